// Command conformance mounts one SecretProviderClass volume against a running
// provider through the Secrets Store CSI Driver's own Go client code, so our
// tests check the provider against what the driver really does rather than
// against our reading of it.
//
// The same source is built twice (see build.sh): with go.mod against driver
// v1.6.0 and with go.v15.mod against the newest v1.5.x on the module proxy.
// The binary finds out at run time which driver it was linked with
// (--driver-version prints it).
//
// Usage:
//
//	conformance --socket-dir DIR --provider NAME --target DIR \
//	    --attributes-file ATTRS.json --secrets-file SECRETS.json \
//	    [--permission 420] [--current-versions VERSIONS.json] \
//	    [--timeout 2m] [--driver-log FILE]
//	conformance --driver-version
//
//	--socket-dir        where <NAME>.sock lives; a comma-separated list is
//	                    searched in order, like the driver's provider paths
//	--provider          SecretProviderClass spec.provider
//	--target            volume directory (created 0750 if missing); the
//	                    driver's atomic writer fills it
//	--attributes-file   JSON object string->string: the map the driver
//	                    marshals into MountRequest.attributes. It is decoded
//	                    and re-marshalled with encoding/json exactly as the
//	                    driver does (sorted keys, <>& escaped as \u003c...).
//	--secrets-file      JSON object string->string, or null when the pod has
//	                    no nodePublishSecretRef
//	--permission        MountRequest.permission as sent (the driver: "420")
//	--current-versions  JSON object id->version. Only driver v1.5.x sends
//	                    versions, from its rotation reconciler, so giving this
//	                    selects that code path; a v1.6.0 build refuses it.
//	--timeout           deadline of the Mount call (kubelet gives
//	                    NodePublishVolume 2m; v1.5.x rotation has none)
//	--driver-log        append the driver's klog output here (default: dropped,
//	                    so that stderr carries nothing but the error text)
//
// Result:
//
//	exit 0  stdout: one JSON line {"object_versions": {"id": "version", ...}}
//	exit 1  the mount failed; stderr: the error text the driver reports,
//	        word for word (see mountPublish and mountRotate)
//	exit 2  bad usage or unreadable input: a harness problem, not a result
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"
)

const driverModule = "sigs.k8s.io/secrets-store-csi-driver"

// usageError marks a problem with how we were called (exit 2), as opposed
// to a mount the driver failed (exit 1).
type usageError struct{ error }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program; it is the one place that decides the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	versions, err := runMount(args, stdout)
	var uerr usageError
	switch {
	case errors.As(err, &uerr):
		fmt.Fprintln(stderr, "conformance:", uerr.error)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, err.Error())
		return 1
	case versions == nil: // --driver-version
		return 0
	}
	out, err := json.Marshal(map[string]map[string]string{"object_versions": versions})
	if err != nil {
		fmt.Fprintln(stderr, "conformance:", err)
		return 2
	}
	fmt.Fprintln(stdout, string(out))
	return 0
}

func runMount(args []string, stdout io.Writer) (map[string]string, error) {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by run
	var (
		socketDir      = fs.String("socket-dir", "", "")
		provider       = fs.String("provider", "", "")
		target         = fs.String("target", "", "")
		attributesFile = fs.String("attributes-file", "", "")
		secretsFile    = fs.String("secrets-file", "", "")
		permission     = fs.String("permission", "420", "")
		currentFile    = fs.String("current-versions", "", "")
		timeout        = fs.Duration("timeout", 2*time.Minute, "")
		driverLog      = fs.String("driver-log", "", "")
		printVersion   = fs.Bool("driver-version", false, "")
	)
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err}
	}
	version, err := driverVersion()
	if err != nil {
		return nil, usageError{err}
	}
	if *printVersion {
		fmt.Fprintln(stdout, version)
		return nil, nil
	}
	for name, v := range map[string]string{"socket-dir": *socketDir, "provider": *provider,
		"target": *target, "attributes-file": *attributesFile, "secrets-file": *secretsFile} {
		if v == "" {
			return nil, usageError{fmt.Errorf("--%s is required", name)}
		}
	}

	var attributes, secrets, current map[string]string
	if err := readJSON(*attributesFile, &attributes); err != nil {
		return nil, err
	}
	if attributes == nil {
		return nil, usageError{errors.New("--attributes-file must hold a JSON object")}
	}
	// A JSON null leaves secrets a nil map: that is what the driver holds
	// when the pod has no nodePublishSecretRef, and it marshals as "null".
	if err := readJSON(*secretsFile, &secrets); err != nil {
		return nil, err
	}
	if *currentFile != "" {
		if err := readJSON(*currentFile, &current); err != nil {
			return nil, err
		}
		if !strings.HasPrefix(version, "v1.5.") {
			return nil, usageError{fmt.Errorf("driver %s never sends current_object_version: "+
				"its rotation is a repeated NodePublishVolume", version)}
		}
	}
	closeLog, err := routeDriverLog(*driverLog)
	if err != nil {
		return nil, usageError{err}
	}
	defer closeLog()

	// kubelet creates nothing under v1.20+; the driver makes the target 0750
	// (then mounts a tmpfs there, which a test has no need for).
	if err := os.MkdirAll(*target, 0o750); err != nil {
		return nil, usageError{err}
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	m := mounter{
		socketDirs: strings.Split(*socketDir, ","),
		provider:   *provider,
		target:     *target,
		permission: *permission,
	}
	if current != nil {
		return m.mountRotate(ctx, attributes, secrets, current)
	}
	return m.mountPublish(ctx, attributes, secrets)
}

func readJSON(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return usageError{err}
	}
	if err := json.Unmarshal(data, into); err != nil {
		return usageError{fmt.Errorf("%s: %w", path, err)}
	}
	return nil
}

// driverVersion is the version of the driver module linked into this
// binary: the build, not a flag, decides which client we are.
func driverVersion() (string, error) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "", errors.New("no build info in this binary")
	}
	for _, dep := range info.Deps {
		if dep.Path == driverModule {
			if dep.Replace != nil {
				return dep.Replace.Version, nil
			}
			return dep.Version, nil
		}
	}
	return "", fmt.Errorf("%s is not linked in", driverModule)
}
