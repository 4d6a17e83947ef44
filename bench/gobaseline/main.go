// Command gobaseline is the in-run Go baseline of bench/cost.py.
//
// It does, per "mount", the backend requests a Go reference provider makes
// per mount, with the SDK that provider uses, one object after another as the
// peers do, and prints the CPU (user+system, this process) it spent per mount.
// The real peers also run a gRPC server, read the Kubernetes API and (AWS)
// parse their config per mount, so this figure is a LOWER bound of the peer's
// CPU on the same backend at the same moment.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"
)

// warmups are not measured: the first client, connection and TLS session are
// start-up costs, as in bench/cost.py's warm-up mounts of our provider.
const warmups = 2

type mountFunc func(ctx context.Context) error

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func main() {
	backend := flag.String("backend", "", "vault | aws | azure")
	objects := flag.Int("objects", 1, "objects read per mount")
	mounts := flag.Int("mounts", 10, "measured mounts (after warm-up ones)")
	vault := vaultFlags()
	aws := awsFlags()
	azure := azureFlags()
	flag.Parse()

	var mount mountFunc
	switch *backend {
	case "vault":
		mount = vault.mount(*objects)
	case "aws":
		mount = aws.mount(*objects)
	case "azure":
		mount = azure.mount(*objects)
	default:
		fmt.Fprintln(os.Stderr, "gobaseline: -backend must be vault, aws or azure")
		os.Exit(2)
	}
	ctx := context.Background()
	for i := 0; i < warmups; i++ {
		if err := mount(ctx); err != nil {
			fail(err)
		}
	}
	cpu0, wall0 := cpuSeconds(), time.Now()
	for i := 0; i < *mounts; i++ {
		if err := mount(ctx); err != nil {
			fail(err)
		}
	}
	n := float64(*mounts)
	out, _ := json.Marshal(map[string]float64{
		"cpu_ms_per_mount":  (cpuSeconds() - cpu0) * 1000 / n,
		"wall_ms_per_mount": float64(time.Since(wall0).Microseconds()) / 1000 / n,
	})
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gobaseline:", err)
	os.Exit(1)
}
