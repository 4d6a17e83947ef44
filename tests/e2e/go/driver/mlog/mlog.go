// Package mlog stands in for monis.app/mlog (a klog wrapper), which the module
// proxy reachable here refuses. It provides what the driver's main and CSI
// server call: Setup, the two formats, the level/format check, Error and
// Fatal. It also hands klog to controller-runtime as its logger, which the real
// mlog does and without which the driver prints a stack at its first
// reconcile ("log.SetLogger(...) was never called").
package mlog

import (
	"context"
	"fmt"
	"os"

	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// LogFormat names an output format.
type LogFormat string

// The formats the driver's --log-format-json flag picks from. The stand-in
// always writes klog's text format: the e2e harness reads it, nobody parses it.
const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

// Setup installs klog as controller-runtime's logger; the returned func
// flushes klog.
func Setup() func() {
	ctrllog.SetLogger(klog.NewKlogr())
	return klog.Flush
}

// ValidateAndSetKlogLevelAndFormatGlobally accepts the two known formats.
func ValidateAndSetKlogLevelAndFormatGlobally(_ context.Context, _ klog.Level, format LogFormat) error {
	if format != FormatText && format != FormatJSON {
		return fmt.Errorf("unknown log format %q", format)
	}
	return nil
}

// Error logs err with a message.
func Error(msg string, err error, keysAndValues ...any) {
	klog.ErrorS(err, msg, keysAndValues...)
}

// Fatal logs err and exits, like the real mlog.Fatal.
func Fatal(err error, keysAndValues ...any) {
	klog.ErrorS(err, "fatal", keysAndValues...)
	klog.Flush()
	os.Exit(255)
}
