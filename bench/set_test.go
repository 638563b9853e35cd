package bench

import (
	"syscall"
	"testing"
)

// A server runs in a process group of its own: a frozen one cannot be
// woken, or killed by SIGHUP, by what the kernel does to the bench's group.
func TestServerInItsOwnProcessGroup(t *testing.T) {
	cmd := serverCmd("sleep", []string{"30"}, "")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pgid, err := syscall.Getpgid(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid != cmd.Process.Pid || pgid == syscall.Getpgrp() {
		t.Fatalf("server in process group %d (its pid %d, the bench's group %d): want a group of its own", pgid, cmd.Process.Pid, syscall.Getpgrp())
	}
}
