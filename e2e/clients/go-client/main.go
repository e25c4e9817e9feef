// An unmodified Go HTTP client for the middlebox lab: plain net/http with its default transport,
// exactly what `http.Get` uses, built static (CGO_ENABLED=0). It knows nothing of tcp-keepalive.
//
// Go turns keep-alive on by itself on every dialed connection, after connect (the default
// transport's dialer: idle 30 s, interval 15 s on Go 1.23+, count 9), too late for a middlebox
// that forgets a flow after 2 s. The lab's "with" run puts this process in a cgroup attached with
// `tcp-keepalive cgroup attach`: the kernel door sets the scenario's keep-alive when the socket
// connects and, with enforcement, caps Go's own later writes to those values.
//
// Lab contract (e2e/README.md): reads LAB_URL, LAB_DEADLINE (its timeout, seconds) and, when set,
// LAB_WRITE_AFTER (send a POST whose body follows the headers that many seconds later; the
// deadline then starts after the body). Exit 0: the full answer; 10: the deadline passed; 11: the
// connection failed (errno name printed first).
package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const bodyLength = 4096

func main() {
	os.Exit(run())
}

func seconds(name string) (time.Duration, error) {
	v, err := strconv.ParseFloat(os.Getenv(name), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s=%q: want seconds >= 0", name, os.Getenv(name))
	}
	return time.Duration(v * float64(time.Second)), nil
}

func run() int {
	start := time.Now()
	took := func() string { return fmt.Sprintf("after %.1f s", time.Since(start).Seconds()) }
	url := os.Getenv("LAB_URL")
	deadline, err := seconds("LAB_DEADLINE")
	if err != nil {
		fmt.Println("usage:", err)
		return 2
	}
	var req *http.Request
	if os.Getenv("LAB_WRITE_AFTER") == "" {
		req, err = http.NewRequest(http.MethodGet, url, nil)
	} else {
		writeAfter, werr := seconds("LAB_WRITE_AFTER")
		if werr != nil {
			fmt.Println("usage:", werr)
			return 2
		}
		deadline += writeAfter
		// A body that is not in memory: net/http sends the headers at once and the body when the
		// pipe has it.
		body, writer := io.Pipe()
		go func() {
			time.Sleep(writeAfter)
			_, _ = writer.Write(make([]byte, bodyLength))
			_ = writer.Close()
		}()
		req, err = http.NewRequest(http.MethodPost, url, body)
		if err == nil {
			req.ContentLength = bodyLength
			req.Header.Set("Content-Type", "application/octet-stream")
		}
	}
	if err != nil {
		fmt.Println("usage:", err)
		return 2
	}
	client := &http.Client{Timeout: deadline} // Transport nil: http.DefaultTransport
	resp, err := client.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
	}
	if err != nil {
		var errno syscall.Errno
		// ETIMEDOUT first: a syscall.Errno ETIMEDOUT also reports Timeout() true.
		if errors.As(err, &errno) {
			fmt.Printf("%s: %v (%s)\n", errnoName(errno), err, took())
			return 11
		}
		var timeout interface{ Timeout() bool }
		if errors.As(err, &timeout) && timeout.Timeout() {
			fmt.Printf("deadline: no answer within %g s (%s)\n", deadline.Seconds(), took())
			return 10
		}
		fmt.Printf("error: %v (%s)\n", err, took())
		return 11
	}
	if resp.StatusCode != http.StatusOK || int64(len(body)) != resp.ContentLength {
		fmt.Printf("http status %d, %d of %d bytes (%s)\n", resp.StatusCode, len(body), resp.ContentLength, took())
		return 11
	}
	fmt.Printf("answer: %s (%s)\n", strings.TrimSpace(string(body)), took())
	return 0
}

// errnoName: the C name the lab looks for (ETIMEDOUT), for the errors a dead path gives.
func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.ETIMEDOUT:
		return "ETIMEDOUT"
	case syscall.ECONNRESET:
		return "ECONNRESET"
	case syscall.ECONNREFUSED:
		return "ECONNREFUSED"
	case syscall.EHOSTUNREACH:
		return "EHOSTUNREACH"
	case syscall.ENETUNREACH:
		return "ENETUNREACH"
	case syscall.EPIPE:
		return "EPIPE"
	}
	return fmt.Sprintf("errno %d", int(e))
}
