package main

// A deliberately broken provider: a real gRPC server on a Unix socket,
// built on the driver's own generated v1alpha1 package, that answers each
// Mount with whatever response the test hands it. With it the tests show
// what the driver's client and writer do with bad answers, so that the
// harness can be trusted to fail a mount exactly when the driver would.

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

const providerName = "fake"

type fakeProvider struct {
	v1alpha1.UnimplementedCSIDriverProviderServer

	mu        sync.Mutex
	resp      *v1alpha1.MountResponse
	err       error
	requests  []*v1alpha1.MountRequest
	authority []string
}

func (f *fakeProvider) Mount(ctx context.Context, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	md, _ := metadata.FromIncomingContext(ctx)
	f.authority = append(f.authority, md.Get(":authority")...)
	return f.resp, f.err
}

// answer sets the next response (and gRPC error) of every Mount.
func (f *fakeProvider) answer(resp *v1alpha1.MountResponse, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resp, f.err = resp, err
}

func (f *fakeProvider) lastRequest(t *testing.T) (*v1alpha1.MountRequest, string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		t.Fatal("the provider received no Mount")
	}
	return f.requests[len(f.requests)-1], f.authority[len(f.authority)-1]
}

// startFake serves f at <dir>/fake.sock. The directory is short and made by
// hand, not t.TempDir(): a Unix socket path must fit in 108 bytes.
func startFake(t *testing.T, f *fakeProvider) (socketDir string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cf")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("unix", filepath.Join(dir, providerName+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		os.RemoveAll(dir)
	})
	return dir
}

// outcome is what the harness process would have printed and returned.
type outcome struct {
	code           int
	stdout, stderr string
}

// versions decodes the success line of stdout.
func (o outcome) versions(t *testing.T) map[string]string {
	t.Helper()
	if o.code != 0 {
		t.Fatalf("mount failed (exit %d): %s", o.code, o.stderr)
	}
	var out struct {
		ObjectVersions map[string]string `json:"object_versions"`
	}
	if err := json.Unmarshal([]byte(o.stdout), &out); err != nil {
		t.Fatalf("stdout %q: %v", o.stdout, err)
	}
	return out.ObjectVersions
}

// failure returns the error text, checking that the mount failed and that
// the text is one line with nothing else (such as driver logs) around it.
func (o outcome) failure(t *testing.T) string {
	t.Helper()
	if o.code != 1 {
		t.Fatalf("want exit 1 (mount failed), got %d; stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	if o.stdout != "" {
		t.Errorf("stdout on failure: %q", o.stdout)
	}
	text := strings.TrimSuffix(o.stderr, "\n")
	if strings.Contains(text, "\n") {
		t.Errorf("stderr is not one line: %q", o.stderr)
	}
	return text
}

// harness runs the program in-process, as the Python side runs the binary.
type harness struct {
	socketDir string
	inputs    string // where the JSON input files go
}

func newHarness(t *testing.T, f *fakeProvider) harness {
	return harness{socketDir: startFake(t, f), inputs: t.TempDir()}
}

func (h harness) mount(t *testing.T, target string, attributes map[string]string, secrets map[string]string, extra ...string) outcome {
	t.Helper()
	attrFile := writeJSON(t, h.inputs, "attributes.json", attributes)
	secretsFile := writeJSON(t, h.inputs, "secrets.json", secrets)
	args := append([]string{
		"--socket-dir", h.socketDir, "--provider", providerName, "--target", target,
		"--attributes-file", attrFile, "--secrets-file", secretsFile, "--timeout", "20s",
	}, extra...)
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return outcome{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
