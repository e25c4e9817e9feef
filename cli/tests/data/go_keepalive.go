// A static Go program (CGO_ENABLED=0) with Go's own keep-alive: it listens on loopback, dials
// itself, and prints what the kernel reports on both ends as JSON:
// {"go":"go1.26.0","dial":[SO_KEEPALIVE,TCP_KEEPIDLE,TCP_KEEPINTVL,TCP_KEEPCNT],"accept":[...]}.
// Usage: go_keepalive default|disabled. Go sets 15/15/9 by default after connect and accept
// (before Go 1.23 only the idle time and interval, 15/15);
// "disabled" (KeepAlive: -1) turns keep-alive off. The cgroup test starts it inside the cgroup.
package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"
)

func read(c net.Conn) []int {
	out := []int{}
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return out
	}
	raw.Control(func(fd uintptr) {
		for _, o := range [][2]int{{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE}, {6, 4}, {6, 5}, {6, 6}} {
			v, err := syscall.GetsockoptInt(int(fd), o[0], o[1])
			if err != nil {
				v = -1
			}
			out = append(out, v)
		}
	})
	return out
}

func main() {
	keepAlive := time.Duration(0) // Go's default: 15 s idle and interval, 9 probes
	if len(os.Args) > 1 && os.Args[1] == "disabled" {
		keepAlive = -1
	}
	lc := net.ListenConfig{KeepAlive: keepAlive}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			panic(err)
		}
		accepted <- c
	}()
	d := net.Dialer{KeepAlive: keepAlive, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	var a net.Conn
	select {
	case a = <-accepted:
	case <-time.After(5 * time.Second):
		panic("no connection accepted within 5 s")
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"go": runtime.Version(), "dial": read(c), "accept": read(a)})
}
