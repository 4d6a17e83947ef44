// A stand-in for monis.app/mlog, which the Go module proxy reachable here
// refuses (403). go.mod replaces the real module with this one; see mlog.go.
module monis.app/mlog

go 1.21
