//go:build !linux

package agent

import (
	"errors"
	"net"
	"syscall"
)

// sendNB and recvNB are one write(2) and one read(2) on a non-blocking socket.
func sendNB(fd uintptr, p []byte) (int, error) { return syscall.Write(int(fd), p) }

func recvNB(fd uintptr, p []byte) (int, error) { return syscall.Read(int(fd), p) }

// leavePoller is Linux's; elsewhere a bot's socket stays in the poller.
func leavePoller(net.Conn) (net.Conn, syscall.RawConn, error) {
	return nil, nil, errors.ErrUnsupported
}
