package proc

import "strings"

// Container is what a cgroup path says about the container a process runs
// in (ParseCgroupPath).
type Container struct {
	// ID is the container's id (hex, as the runtime names it), "" if the
	// path names no container.
	ID string
	// Runtime names the runtime that made the cgroup: "docker",
	// "containerd", "crio" or "kubepods" (a pod's cgroup whose container
	// id is a bare hex name).
	Runtime string
	// PodUID is the Kubernetes pod's uid (with dashes), "" outside a pod.
	PodUID string
}

// ParseCgroupPath finds the container in a cgroup v2 path, such as
// /system.slice/docker-<64 hex>.scope, /docker/<64 hex>,
// .../cri-containerd-<id>.scope, .../crio-<id>.scope, or a Kubernetes pod's
// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope
// and /kubepods/burstable/pod<uid>/<64 hex>. The innermost container
// wins (a container in a container). Paths that name none give the zero
// Container.
func ParseCgroupPath(path string) Container {
	var c Container
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		if uid, ok := podUID(p); ok {
			c.PodUID = uid
			continue
		}
		switch {
		case i > 0 && parts[i-1] == "docker" && isHex(p, 64, 64):
			c.ID, c.Runtime = p, "docker"
		case scopeID(p, "docker-", 64) != "":
			c.ID, c.Runtime = scopeID(p, "docker-", 64), "docker"
		case scopeID(p, "cri-containerd-", 12) != "":
			c.ID, c.Runtime = scopeID(p, "cri-containerd-", 12), "containerd"
		case scopeID(p, "crio-", 12) != "":
			c.ID, c.Runtime = scopeID(p, "crio-", 12), "crio"
		case c.PodUID != "" && isHex(p, 64, 64):
			c.ID, c.Runtime = p, "kubepods"
		}
	}
	return c
}

// scopeID returns the id of a systemd scope "<prefix><hex>.scope" whose
// hex id is at least minLen long, or "".
func scopeID(p, prefix string, minLen int) string {
	id, ok := strings.CutPrefix(p, prefix)
	if !ok {
		return ""
	}
	id, ok = strings.CutSuffix(id, ".scope")
	if !ok || !isHex(id, minLen, 64) {
		return ""
	}
	return id
}

// podUID returns the uid of a pod's cgroup: "pod<uid>" (cgroupfs driver) or
// "kubepods[-class]-pod<uid with _ for ->.slice" (systemd driver).
func podUID(p string) (string, bool) {
	if s, ok := strings.CutSuffix(p, ".slice"); ok && strings.HasPrefix(s, "kubepods") {
		i := strings.LastIndex(s, "-pod")
		if i < 0 {
			return "", false
		}
		uid := strings.ReplaceAll(s[i+len("-pod"):], "_", "-")
		return uid, isUID(uid)
	}
	if uid, ok := strings.CutPrefix(p, "pod"); ok && isUID(uid) {
		return uid, true
	}
	return "", false
}

// isUID reports whether s looks like a pod uid: hex digits and dashes,
// 32 digits in all.
func isUID(s string) bool {
	digits := 0
	for _, r := range s {
		switch {
		case r == '-':
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f':
			digits++
		default:
			return false
		}
	}
	return digits == 32
}

func isHex(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
