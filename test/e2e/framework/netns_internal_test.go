package framework

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNetNS: a namespace with its veth pair and addresses is made, and Delete removes it and
// both ends; a namespace left by a dead test process is removed
// by the next NewNetNS.
func TestNetNS(t *testing.T) {
	if err := NetNSRequirements(); err != nil {
		t.Fatal(err)
	}
	stale := netnsPrefix + "4194305-1" // above any pid_max: no such process
	if err := ipCmd("netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ipCmd("netns", "del", stale) })

	n := StartNetNS(t)
	if _, err := os.Stat(filepath.Join("/run/netns", stale)); err == nil {
		t.Errorf("the namespace of a dead process, %s, is still there", stale)
	}
	if _, err := net.InterfaceByName(n.hostLink); err != nil {
		t.Fatalf("host end %s: %v", n.hostLink, err)
	}
	// Inside, the namespace's end holds PodIP.
	nsenter, args := n.Command("/bin/sh", []string{"-c", "ip -4 -o addr show"})
	out, err := exec.Command(nsenter, args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), n.PodIP+"/30") {
		t.Fatalf("inside %s: %v\n%s", n.Name, err, out)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.InterfaceByName(n.hostLink); err == nil {
		t.Errorf("host end %s still there after Delete", n.hostLink)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", n.Name)); err == nil {
		t.Errorf("%s still there after Delete", n.Name)
	}
}
