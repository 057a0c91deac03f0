package proc

import (
	"strings"
	"testing"
)

func TestParseCgroupPath(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	const uid = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9"
	uidSystemd := strings.ReplaceAll(uid, "-", "_")
	for _, tc := range []struct {
		path string
		want Container
	}{
		{"/system.slice/docker-" + hex64 + ".scope", Container{ID: hex64, Runtime: "docker"}},
		{"/docker/" + hex64, Container{ID: hex64, Runtime: "docker"}},
		{"/docker/" + hex64 + "/init.scope", Container{ID: hex64, Runtime: "docker"}},
		{"/system.slice/containerd.service/cri-containerd-" + hex64 + ".scope", Container{ID: hex64, Runtime: "containerd"}},
		{"/machine.slice/crio-" + hex64 + ".scope", Container{ID: hex64, Runtime: "crio"}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice/cri-containerd-" + hex64 + ".scope",
			Container{ID: hex64, Runtime: "containerd", PodUID: uid}},
		{"/kubepods.slice/kubepods-pod" + uidSystemd + ".slice/crio-" + hex64 + ".scope", Container{ID: hex64, Runtime: "crio", PodUID: uid}},
		{"/kubepods/burstable/pod" + uid + "/" + hex64, Container{ID: hex64, Runtime: "kubepods", PodUID: uid}},
		{"/kubepods/besteffort/pod" + uid, Container{PodUID: uid}},
		// docker in docker: the innermost container.
		{"/docker/" + hex64 + "/docker/" + strings.Repeat("f", 64), Container{ID: strings.Repeat("f", 64), Runtime: "docker"}},
		// Not containers.
		{"/", Container{}},
		{"", Container{}},
		{"/user.slice/user-0.slice/session-3.scope", Container{}},
		{"/system.slice/docker.service", Container{}},
		{"/system.slice/docker-" + hex64[:63] + ".scope", Container{}},             // too short
		{"/system.slice/docker-" + strings.ToUpper(hex64) + ".scope", Container{}}, // not lowercase hex
		{"/system.slice/docker-" + hex64 + ".service", Container{}},
		{"/docker/notanid", Container{}},
		{"/" + hex64, Container{}}, // a bare id outside docker or a pod
		{"/kubepods/burstable/podnotauid/" + hex64, Container{}},
		{"/system.slice/crio-conmon-" + hex64 + ".scope", Container{}},
	} {
		if got := ParseCgroupPath(tc.path); got != tc.want {
			t.Errorf("ParseCgroupPath(%q) = %+v, want %+v", tc.path, got, tc.want)
		}
	}
}
