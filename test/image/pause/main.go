// The pod sandbox ("pause") process of the real-node lab: holds the pod's namespaces, reaps
// children when it is PID 1 of a shared PID namespace, and exits on SIGTERM/SIGINT.
// Built statically (CGO_ENABLED=0) by ../build.sh; a registry's pause image is not reachable here.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
