//go:build !linux

package agent

import (
	"errors"
	"net"
	"syscall"
)

// sendNB and recvNB are one write(2) and one read(2) on a non-blocking
// socket; an interrupted call is made again, and the count is 0 on an error.
func sendNB(fd uintptr, p []byte) (int, error) { return retryEINTR(syscall.Write, fd, p) }

func recvNB(fd uintptr, p []byte) (int, error) { return retryEINTR(syscall.Read, fd, p) }

func retryEINTR(call func(int, []byte) (int, error), fd uintptr, p []byte) (int, error) {
	for {
		n, err := call(int(fd), p)
		if err == syscall.EINTR {
			continue
		}
		return max(n, 0), err
	}
}

// leavePoller is Linux's; elsewhere a bot's socket stays in the poller.
func leavePoller(net.Conn) (net.Conn, syscall.RawConn, error) {
	return nil, nil, errors.ErrUnsupported
}
