// Builds the Secrets Store CSI Driver binary from its published module. The
// driver imports monis.app/mlog, which the module proxy reachable here refuses
// (403); ./mlog stands in for the part of it the driver's main uses.
module polysecret.e2e/driver

go 1.25.9

require (
	monis.app/mlog v0.0.2
	sigs.k8s.io/secrets-store-csi-driver v1.6.0
)

replace monis.app/mlog => ./mlog
