package main

// What the driver's client and writer really do with a provider's answer,
// checked through the harness against the fake provider. The same tests run
// against both driver lines (go test, and go test -modfile=go.v15.mod); the
// few expectations that differ between them are keyed on driverVersion.

import (
	"encoding/json"
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// podAttributes is what the driver sends for a pod: the values include
// characters that Go's JSON encoder escapes, to pin the exact bytes.
func podAttributes() map[string]string {
	return map[string]string{
		"objects":                                  "- name: <a&b>",
		"secretProviderClass":                      "spc",
		"csi.storage.k8s.io/pod.name":              "web",
		"csi.storage.k8s.io/pod.namespace":         "ns1",
		"csi.storage.k8s.io/pod.uid":               "0c2f3e8a-1111-2222-3333-444455556666",
		"csi.storage.k8s.io/serviceAccount.name":   "default",
		"csi.storage.k8s.io/serviceAccount.tokens": `{"":{"token":"eyJ.x.y","expirationTimestamp":"2030-01-01T00:00:00Z"}}`,
	}
}

// publishPrefix starts every first-mount failure, as kubelet reports it.
const publishPrefix = "failed to mount secrets store objects for pod ns1/web, err: "

func versionsOf(pairs ...string) []*v1alpha1.ObjectVersion {
	var out []*v1alpha1.ObjectVersion
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, &v1alpha1.ObjectVersion{Id: pairs[i], Version: pairs[i+1]})
	}
	return out
}

func file(path string, mode int32, contents string) *v1alpha1.File {
	return &v1alpha1.File{Path: path, Mode: mode, Contents: []byte(contents)}
}

func mustVersion(t *testing.T) string {
	t.Helper()
	v, err := driverVersion()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDriverVersionIsLinked(t *testing.T) {
	v := mustVersion(t)
	t.Logf("linked with %s %s", driverModule, v)
	if v != "v1.6.0" && !strings.HasPrefix(v, "v1.5.") {
		t.Fatalf("linked driver %q: want v1.6.0 or v1.5.x", v)
	}
	var stdout, stderr strings.Builder
	if code := run([]string{"--driver-version"}, &stdout, &stderr); code != 0 || stdout.String() != v+"\n" {
		t.Fatalf("--driver-version: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// TestGoodMount: the request is the driver's byte for byte, and the answer
// lands in the kubelet-style layout with the right contents and modes.
func TestGoodMount(t *testing.T) {
	f := &fakeProvider{}
	h := newHarness(t, f)
	f.answer(&v1alpha1.MountResponse{
		ObjectVersion: versionsOf("db", "3", "tls", "7"),
		Files: []*v1alpha1.File{
			file("config.yaml", 0o644, "a: 1\n"),
			file("certs/tls.crt", 0o600, "CRT"),
			file("certs/tls.key", 0o400, "KEY"),
		},
	}, nil)
	target := filepath.Join(t.TempDir(), "vol")

	got := h.mount(t, target, podAttributes(), nil).versions(t)
	if want := map[string]string{"db": "3", "tls": "7"}; !maps.Equal(got, want) {
		t.Errorf("object versions %v, want %v", got, want)
	}

	req, authority := f.lastRequest(t)
	wantAttrs, _ := json.Marshal(podAttributes())
	if req.Attributes != string(wantAttrs) {
		t.Errorf("attributes %s, want %s", req.Attributes, wantAttrs)
	}
	if !strings.Contains(req.Attributes, `"objects":"- name: \u003ca\u0026b\u003e"`) {
		t.Errorf("attributes not escaped the driver's way: %s", req.Attributes)
	}
	if req.Secrets != "null" || req.Permission != "420" || req.TargetPath != target || len(req.CurrentObjectVersion) != 0 {
		t.Errorf("secrets %q permission %q target %q current %v", req.Secrets, req.Permission, req.TargetPath, req.CurrentObjectVersion)
	}
	// v1.6.0 dials "unix:<path>" with authority localhost; v1.5.x dials the
	// bare path with a custom dialer, and the path becomes the authority.
	wantAuthority := "localhost"
	if strings.HasPrefix(mustVersion(t), "v1.5.") {
		wantAuthority = filepath.Join(h.socketDir, providerName+".sock")
	}
	if authority != wantAuthority {
		t.Errorf(":authority %q, want %q", authority, wantAuthority)
	}

	// The layout: real files in ..<timestamp>/, ..data -> it, and one
	// symlink per top-level entry into ..data.
	tsDir := checkLayout(t, target, map[string]string{"config.yaml": "..data/config.yaml", "certs": "..data/certs"})
	checkFile(t, target, "config.yaml", 0o644, "a: 1\n")
	checkFile(t, target, "certs/tls.crt", 0o600, "CRT")
	checkFile(t, target, "certs/tls.key", 0o400, "KEY")
	if fi, err := os.Stat(filepath.Join(target, tsDir)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("timestamp dir: %v %v", fi.Mode(), err)
	}

	// A later answer that drops certs/ and changes config.yaml: the old
	// entries go, ..data moves to a new timestamp dir, the old one is removed.
	f.answer(&v1alpha1.MountResponse{
		ObjectVersion: versionsOf("db", "4"),
		Files:         []*v1alpha1.File{file("config.yaml", 0o644, "a: 2\n")},
	}, nil)
	h.mount(t, target, podAttributes(), nil).versions(t)
	tsDir2 := checkLayout(t, target, map[string]string{"config.yaml": "..data/config.yaml"})
	checkFile(t, target, "config.yaml", 0o644, "a: 2\n")
	if tsDir2 == tsDir {
		t.Errorf("..data still points at %s", tsDir)
	}
	if _, err := os.Lstat(filepath.Join(target, tsDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old timestamp dir %s left behind: %v", tsDir, err)
	}

	// Same contents, new mode: the writer compares contents only, so it
	// writes nothing and the old mode stays until the contents change.
	f.answer(&v1alpha1.MountResponse{
		ObjectVersion: versionsOf("db", "4"),
		Files:         []*v1alpha1.File{file("config.yaml", 0o600, "a: 2\n")},
	}, nil)
	h.mount(t, target, podAttributes(), nil).versions(t)
	if ts := checkLayout(t, target, map[string]string{"config.yaml": "..data/config.yaml"}); ts != tsDir2 {
		t.Errorf("rewrote %s for a mode-only change", ts)
	}
	checkFile(t, target, "config.yaml", 0o644, "a: 2\n")
}

func TestNodePublishSecretsAreSent(t *testing.T) {
	f := &fakeProvider{}
	h := newHarness(t, f)
	f.answer(&v1alpha1.MountResponse{ObjectVersion: versionsOf("a", "1")}, nil)
	h.mount(t, t.TempDir(), podAttributes(), map[string]string{"clientSecret": "s3<cr>t"}).versions(t)
	if req, _ := f.lastRequest(t); req.Secrets != `{"clientSecret":"s3\u003ccr\u003et"}` {
		t.Errorf("secrets %q", req.Secrets)
	}
}

// TestProviderFailures: answers the driver fails whole, with the exact text
// it reports, and without writing anything into the volume.
func TestProviderFailures(t *testing.T) {
	goodFiles := []*v1alpha1.File{file("a", 0o644, "A")}
	long := strings.Repeat("x", 256)
	for _, tc := range []struct {
		name string
		resp *v1alpha1.MountResponse
		err  error
		want string
	}{
		{"no object versions", &v1alpha1.MountResponse{Files: goodFiles}, nil,
			"missing object versions"},
		{"empty object version list", &v1alpha1.MountResponse{ObjectVersion: []*v1alpha1.ObjectVersion{}, Files: goodFiles}, nil,
			"missing object versions"},
		{"error code wins over files and versions", &v1alpha1.MountResponse{
			ObjectVersion: versionsOf("a", "1"), Files: goodFiles, Error: &v1alpha1.Error{Code: "BackendUnavailable"}}, nil,
			"mount request failed with provider error code BackendUnavailable"},
		{"grpc status", nil, status.Error(codes.InvalidArgument, `object "db": no such secret`),
			`rpc error: code = InvalidArgument desc = object "db": no such secret`},
		{"double slash", badPath("a//b"), nil, `invalid filepath: "a//b"`},
		{"dot prefix", badPath("./a"), nil, `invalid filepath: "./a"`},
		{"trailing slash", badPath("a/"), nil, `invalid filepath: "a/"`},
		{"inner dot", badPath("a/./b"), nil, `invalid filepath: "a/./b"`},
		{"parent", badPath("../x"), nil, `invalid path: must not contain '..': ../x`},
		{"inner parent", badPath("a/../b"), nil, `invalid path: must not contain '..': a/../b`},
		{"absolute", badPath("/abs"), nil, `invalid path: must be relative path: /abs`},
		{"empty", badPath(""), nil, `invalid path: must not be empty: ""`},
		{"writer's ..data", badPath("..data/x"), nil, `invalid path: must not start with '..': ..data/x`},
		{"dotdot prefix", badPath("...x"), nil, `invalid path: must not start with '..': ...x`},
		{"long name", badPath(long), nil, `invalid path: filenames must be less than or equal to 255 characters`},
		{"long path", badPath(strings.Repeat("abcdefg/", 512) + "z"), nil,
			`invalid path: must be less than or equal to 4096 characters`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeProvider{}
			h := newHarness(t, f)
			f.answer(tc.resp, tc.err)
			target := t.TempDir()
			if got := h.mount(t, target, podAttributes(), nil).failure(t); got != publishPrefix+tc.want {
				t.Errorf("error\n got %q\nwant %q", got, publishPrefix+tc.want)
			}
			if entries := listDir(t, target); len(entries) != 0 {
				t.Errorf("wrote %v despite the failure", entries)
			}
		})
	}
}

// badPath is a response whose one bad path comes after a good file: the
// driver validates all paths before it writes any.
func badPath(p string) *v1alpha1.MountResponse {
	return &v1alpha1.MountResponse{
		ObjectVersion: versionsOf("a", "1"),
		Files:         []*v1alpha1.File{file("good", 0o644, "G"), file(p, 0o644, "B")},
	}
}

// TestPathsThatPassValidation: paths the driver's validation lets through.
func TestPathsThatPassValidation(t *testing.T) {
	t.Run("dot makes the writer delete the whole volume", func(t *testing.T) {
		// cleanupProviderFiles takes "." for a file the provider wrote
		// itself and RemoveAll's <target>/. before writing anything.
		f := &fakeProvider{}
		h := newHarness(t, f)
		f.answer(badPath("."), nil)
		target := filepath.Join(t.TempDir(), "vol")
		got := h.mount(t, target, podAttributes(), nil).failure(t)
		if want := publishPrefix + "stat " + target + ": no such file or directory"; got != want {
			t.Errorf("error\n got %q\nwant %q", got, want)
		}
		if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("target survived: %v", err)
		}
	})
	t.Run("dot on a tmpfs volume empties it", func(t *testing.T) {
		// The driver's target is a tmpfs mount point: RemoveAll deletes the
		// content, then fails on the mount point itself, even after a good
		// mount. Needs root to mount, as the driver has.
		f := &fakeProvider{}
		h := newHarness(t, f)
		target := filepath.Join(t.TempDir(), "vol")
		mountTmpfs(t, target)
		f.answer(&v1alpha1.MountResponse{ObjectVersion: versionsOf("a", "1"), Files: []*v1alpha1.File{file("a", 0o644, "A")}}, nil)
		h.mount(t, target, podAttributes(), nil).versions(t)
		f.answer(badPath("."), nil)
		got := h.mount(t, target, podAttributes(), nil).failure(t)
		if want := publishPrefix + "cleanup failure: unlinkat " + target + ": device or resource busy"; got != want {
			t.Errorf("error\n got %q\nwant %q", got, want)
		}
		if entries := listDir(t, target); len(entries) != 0 {
			t.Errorf("volume still holds %v", entries)
		}
	})
	t.Run("file beside a dir of the same name fails while writing", func(t *testing.T) {
		f := &fakeProvider{}
		h := newHarness(t, f)
		f.answer(&v1alpha1.MountResponse{
			ObjectVersion: versionsOf("a", "1"),
			Files:         []*v1alpha1.File{file("a", 0o644, "A"), file("a/b", 0o644, "B")},
		}, nil)
		target := t.TempDir()
		got := h.mount(t, target, podAttributes(), nil).failure(t)
		// Which error depends on Go's map order in the writer: "a" first
		// makes MkdirAll("a/") fail, "a/b" first makes writing "a" fail.
		if !strings.HasSuffix(got, ": file exists") && !strings.HasSuffix(got, ": is a directory") {
			t.Errorf("error %q", got)
		}
		if _, err := os.Lstat(filepath.Join(target, "..data")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("..data exists after a failed write: %v", err)
		}
	})
	t.Run("duplicate path: last wins silently", func(t *testing.T) {
		f := &fakeProvider{}
		h := newHarness(t, f)
		f.answer(&v1alpha1.MountResponse{
			ObjectVersion: versionsOf("a", "1"),
			Files:         []*v1alpha1.File{file("a", 0o600, "first"), file("a", 0o644, "second")},
		}, nil)
		target := t.TempDir()
		h.mount(t, target, podAttributes(), nil).versions(t)
		checkFile(t, target, "a", 0o644, "second")
	})
	t.Run("inner element starting with dots is fine", func(t *testing.T) {
		f := &fakeProvider{}
		h := newHarness(t, f)
		f.answer(&v1alpha1.MountResponse{
			ObjectVersion: versionsOf("a", "1"),
			Files:         []*v1alpha1.File{file("a/..b", 0o644, "B")},
		}, nil)
		target := t.TempDir()
		h.mount(t, target, podAttributes(), nil).versions(t)
		checkFile(t, target, "a/..b", 0o644, "B")
	})
}

// TestModes: the writer never rejects a mode. It turns the int32 into a Go
// os.FileMode and chmods: bits 0..8 are the permissions, the Unix special
// bits (0o7000) are dropped, and Go's own high bits for setuid (1<<23),
// setgid (1<<22) and sticky (1<<20) become the real ones, so -1 gives 07777.
func TestModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode int32
		want os.FileMode
	}{
		{"0644", 0o644, 0o644},
		{"0400", 0o400, 0o400},
		{"zero", 0, 0},
		{"0777", 0o777, 0o777},
		{"0o1000 dropped", 0o1000, 0},
		{"0o4755 setuid dropped", 0o4755, 0o755},
		{"-1 sets every special bit", -1, os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky},
		{"Go's setuid bit", 1<<23 | 0o755, os.ModeSetuid | 0o755},
		{"min int32 (Go's dir bit) ignored", math.MinInt32, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeProvider{}
			h := newHarness(t, f)
			f.answer(&v1alpha1.MountResponse{
				ObjectVersion: versionsOf("a", "1"),
				Files:         []*v1alpha1.File{file("f", tc.mode, "x")},
			}, nil)
			target := t.TempDir()
			h.mount(t, target, podAttributes(), nil).versions(t)
			checkFile(t, target, "f", tc.want, "x")
		})
	}
}

// TestNoFiles: versions without files is the legacy mode (the provider
// wrote the volume itself): the driver succeeds and writes nothing.
func TestNoFiles(t *testing.T) {
	f := &fakeProvider{}
	h := newHarness(t, f)
	f.answer(&v1alpha1.MountResponse{ObjectVersion: versionsOf("a", "1")}, nil)
	target := t.TempDir()
	if got := h.mount(t, target, podAttributes(), nil).versions(t); !maps.Equal(got, map[string]string{"a": "1"}) {
		t.Errorf("versions %v", got)
	}
	if entries := listDir(t, target); len(entries) != 0 {
		t.Errorf("wrote %v", entries)
	}
}

func TestProviderLookupFailures(t *testing.T) {
	f := &fakeProvider{}
	h := newHarness(t, f)
	for _, tc := range []struct{ provider, want string }{
		{"absent", `error connecting to provider "absent": provider not found: provider "absent"`},
		{"bad.name", `error connecting to provider "bad.name": invalid provider: provider "bad.name"`},
	} {
		got := h.mount(t, t.TempDir(), podAttributes(), nil, "--provider", tc.provider).failure(t)
		if got != publishPrefix+tc.want {
			t.Errorf("error\n got %q\nwant %q", got, publishPrefix+tc.want)
		}
	}
}

// TestRotationPath: only v1.5.x sends current versions, from its rotation
// reconciler, with "{}" for absent secrets and its own error text.
func TestRotationPath(t *testing.T) {
	f := &fakeProvider{}
	h := newHarness(t, f)
	current := writeJSON(t, h.inputs, "current.json", map[string]string{"db": "3", "tls": "7"})
	f.answer(&v1alpha1.MountResponse{ObjectVersion: versionsOf("db", "4"), Files: []*v1alpha1.File{file("a", 0o644, "A")}}, nil)

	if !strings.HasPrefix(mustVersion(t), "v1.5.") {
		o := h.mount(t, t.TempDir(), podAttributes(), nil, "--current-versions", current)
		if o.code != 2 || !strings.Contains(o.stderr, "never sends current_object_version") {
			t.Fatalf("v1.6 with --current-versions: exit %d, stderr %q", o.code, o.stderr)
		}
		return
	}

	target := t.TempDir()
	h.mount(t, target, podAttributes(), nil, "--current-versions", current).versions(t)
	req, _ := f.lastRequest(t)
	var sent []string
	for _, v := range req.CurrentObjectVersion {
		sent = append(sent, v.Id+"="+v.Version)
	}
	sort.Strings(sent)
	if strings.Join(sent, ",") != "db=3,tls=7" || req.Secrets != "{}" {
		t.Errorf("current versions %v, secrets %q", sent, req.Secrets)
	}
	checkFile(t, target, "a", 0o644, "A")

	f.answer(&v1alpha1.MountResponse{Files: []*v1alpha1.File{file("a", 0o644, "A")}}, nil)
	got := h.mount(t, target, podAttributes(), nil, "--current-versions", current).failure(t)
	if got != "provider mount err: missing object versions" {
		t.Errorf("error %q", got)
	}
}

var tsDirRe = regexp.MustCompile(`^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$`)

// checkLayout asserts that target holds exactly ..data, one timestamp dir
// and the given top-level symlinks, and returns the timestamp dir's name.
func checkLayout(t *testing.T, target string, links map[string]string) string {
	t.Helper()
	tsDir, err := os.Readlink(filepath.Join(target, "..data"))
	if err != nil || !tsDirRe.MatchString(tsDir) {
		t.Fatalf("..data -> %q (%v)", tsDir, err)
	}
	want := []string{"..data", tsDir}
	for name, dest := range links {
		want = append(want, name)
		if got, err := os.Readlink(filepath.Join(target, name)); err != nil || got != dest {
			t.Errorf("%s -> %q (%v), want -> %q", name, got, err, dest)
		}
	}
	sort.Strings(want)
	if got := listDir(t, target); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("target holds %v, want %v", got, want)
	}
	return tsDir
}

// checkFile reads rel through the symlinks, as a pod would.
func checkFile(t *testing.T, target, rel string, mode os.FileMode, contents string) {
	t.Helper()
	path := filepath.Join(target, rel)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() {
		t.Errorf("%s is %v, not a regular file", rel, fi.Mode())
	}
	const modeBits = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky
	if got := fi.Mode() & modeBits; got != mode {
		t.Errorf("%s mode %v, want %v", rel, got, mode)
	}
	if mode&0o400 == 0 && os.Geteuid() != 0 {
		return // unreadable to a non-root owner: the mode check is the test
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != contents {
		t.Errorf("%s holds %q (%v), want %q", rel, data, err, contents)
	}
}

// mountTmpfs mounts a tmpfs at dir, as the driver does before calling the
// provider, or skips the test where mounting is not allowed.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): needs root", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}
