package main

// The two ways the driver calls a provider's Mount, each mirrored from the
// driver's source so that the request bytes, the response handling (done by
// the driver's own MountContent and atomic file writer) and the error text
// are the driver's:
//
//   - mountPublish: pkg/secrets-store/nodeserver.go NodePublishVolume and
//     mountSecretsStoreObjectContent (v1.5.x and v1.6.0 alike; in v1.6.0 this
//     is also the rotation path, kubelet simply publishes again);
//   - mountRotate: pkg/rotation/reconciler.go reconcile (v1.5.x only).

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"
	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
)

const (
	csiPodName      = "csi.storage.k8s.io/pod.name"
	csiPodNamespace = "csi.storage.k8s.io/pod.namespace"

	// maxCallRecvMsgSize is the default of the driver's
	// --max-call-recv-msg-size, which main.go passes to the client builder.
	maxCallRecvMsgSize = 4 * 1024 * 1024
)

type mounter struct {
	socketDirs []string
	provider   string
	target     string
	permission string
}

// clients builds the provider client builder the way the driver's main.go
// does. A process mounts once, so it holds one connection, as the driver does.
func (m mounter) clients() *secretsstore.PluginClientBuilder {
	return secretsstore.NewPluginClientBuilder(m.socketDirs,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxCallRecvMsgSize)))
}

// mountPublish is NodePublishVolume from json.Marshal of the parameters on:
// secrets marshal as "null" when the pod has no nodePublishSecretRef, no
// current versions are ever sent, and a failure reaches kubelet (and so the
// pod's FailedMount event) as "failed to mount secrets store objects for pod
// NS/NAME, err: " followed by the error of MountContent or of the writer.
func (m mounter) mountPublish(ctx context.Context, attributes, secrets map[string]string) (map[string]string, error) {
	podName, podNamespace := attributes[csiPodName], attributes[csiPodNamespace]
	parametersStr, err := json.Marshal(attributes)
	if err != nil {
		return nil, err
	}
	secretStr, err := json.Marshal(secrets)
	if err != nil {
		return nil, err
	}
	builder := m.clients()
	defer builder.Cleanup()

	versions, err := m.publishContent(ctx, builder, string(parametersStr), string(secretStr))
	if err != nil {
		return nil, fmt.Errorf("failed to mount secrets store objects for pod %s/%s, err: %w", podNamespace, podName, err)
	}
	return versions, nil
}

// publishContent is the node server's mountSecretsStoreObjectContent.
func (m mounter) publishContent(ctx context.Context, builder *secretsstore.PluginClientBuilder, attributes, secrets string) (map[string]string, error) {
	if len(m.permission) == 0 {
		return nil, fmt.Errorf("missing file permissions")
	}
	client, err := builder.Get(ctx, m.provider)
	if err != nil {
		return nil, fmt.Errorf("error connecting to provider %q: %w", m.provider, err)
	}
	versions, _, err := secretsstore.MountContent(ctx, client, attributes, secrets, m.target, m.permission, nil)
	return versions, err
}

// mountRotate is the v1.5.x rotation reconciler: it builds the secrets from
// a fresh map (so no nodePublishSecretRef marshals as "{}", not "null"),
// sends the versions of the last mount, and reports a failure to the pod as
// a "MountRotationFailed" event "provider mount err: ...". The attributes are
// whatever the caller built (the reconciler sends SPC parameters and pod
// fields but none of the pod's volumeAttributes).
func (m mounter) mountRotate(ctx context.Context, attributes, secrets, current map[string]string) (map[string]string, error) {
	paramsJSON, err := json.Marshal(attributes)
	if err != nil {
		return nil, err
	}
	nodePublishSecretData := make(map[string]string)
	for k, v := range secrets {
		nodePublishSecretData[k] = v
	}
	secretsJSON, err := json.Marshal(nodePublishSecretData)
	if err != nil {
		return nil, err
	}
	builder := m.clients()
	defer builder.Cleanup()

	client, err := builder.Get(ctx, m.provider)
	if err != nil {
		return nil, fmt.Errorf("failed to lookup provider client: %q", m.provider)
	}
	versions, _, err := secretsstore.MountContent(ctx, client, string(paramsJSON), string(secretsJSON), m.target, m.permission, current)
	if err != nil {
		return nil, fmt.Errorf("provider mount err: %+v", err)
	}
	return versions, nil
}

// routeDriverLog sends the driver's klog output to path, or drops it:
// MountContent and the atomic writer log their errors with klog, which
// would otherwise mix into the error text on our stderr.
func routeDriverLog(path string) (func(), error) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for name, value := range map[string]string{
		"logtostderr":     "false",
		"alsologtostderr": "false",
		"stderrthreshold": "FATAL",
		"v":               "5",
	} {
		if err := fs.Set(name, value); err != nil {
			return nil, err
		}
	}
	if path == "" {
		klog.SetOutput(io.Discard)
		return func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	klog.SetOutput(f)
	return func() { klog.Flush(); f.Close() }, nil
}
