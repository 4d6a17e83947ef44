module monis.app/mlog

go 1.25.9

require (
	k8s.io/klog/v2 v2.120.1
	sigs.k8s.io/controller-runtime v0.18.7
)
