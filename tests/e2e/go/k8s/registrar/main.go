// Command registrar registers a CSI driver with kubelet, the job of
// node-driver-registrar, which the Go module proxy reachable here refuses to
// serve. It asks the driver its name (CSI GetPluginInfo) and serves kubelet's
// plugin-registration v1 API on <plugins_registry>/<name>-reg.sock, so kubelet
// discovers the driver exactly as it would in a cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

type server struct {
	registerapi.UnimplementedRegistrationServer
	name, endpoint string
}

func (s *server) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              s.name,
		Endpoint:          s.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (s *server) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !st.PluginRegistered {
		log.Printf("kubelet refused the registration: %s", st.Error)
	} else {
		log.Printf("registered %s with kubelet", s.name)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// driverName asks the driver's Identity service for its name, retrying while
// the driver starts.
func driverName(socket string) (string, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		info, err := csi.NewIdentityClient(conn).GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
		cancel()
		if err == nil {
			return info.GetName(), nil
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func main() {
	csiAddress := flag.String("csi-address", "", "path of the driver's CSI socket")
	registry := flag.String("plugin-registration-path", "/var/lib/kubelet/plugins_registry", "kubelet's plugin registry directory")
	flag.Parse()
	if *csiAddress == "" {
		log.Fatal("--csi-address is required")
	}
	name, err := driverName(*csiAddress)
	if err != nil {
		log.Fatalf("GetPluginInfo: %v", err)
	}
	sock := filepath.Join(*registry, fmt.Sprintf("%s-reg.sock", name))
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatalf("listen %s: %v", sock, err)
	}
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, &server{name: name, endpoint: *csiAddress})
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		srv.Stop()
		_ = os.Remove(sock)
		os.Exit(0)
	}()
	log.Printf("serving %s for driver %s", sock, name)
	if err := srv.Serve(lis); err != nil {
		log.Fatal(err)
	}
}
