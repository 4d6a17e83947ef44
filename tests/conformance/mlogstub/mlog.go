// Package mlog stands in for monis.app/mlog (a logging wrapper), which the
// module proxy this project can reach does not serve. The driver packages we
// link use only mlog.Fatal, in the driver's own CSI gRPC server, which the
// conformance harness never starts; the provider client, MountContent and the
// file writer do not touch it. So a stub that keeps the meaning (log, exit)
// changes nothing we test.
package mlog

import (
	"fmt"
	"os"
)

// Fatal prints err and exits, like the real mlog.Fatal.
func Fatal(err error, keysAndValues ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"fatal:", err}, keysAndValues...)...)
	os.Exit(255)
}
