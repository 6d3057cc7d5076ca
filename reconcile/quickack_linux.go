package reconcile

import (
	"net"
	"syscall"
)

// quickAck returns conn with every read followed by TCP_QUICKACK, so that
// the host's kernel gets the ACK of what it sent at once instead of up to
// 40 ms later (Linux delays ACKs). sshd does not set TCP_NODELAY on a
// session without a terminal, so it holds a small write (a channel's
// confirmation, the line that ends a script) until its previous one is
// ACKed: without this, a session open or a script's last line could wait
// for the controller's delayed ACK. Quick ACK mode does not last (the
// kernel leaves it again), hence once per read.
func quickAck(conn net.Conn) net.Conn {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return conn
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return conn
	}
	return &quickAckConn{TCPConn: tc, raw: raw}
}

type quickAckConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

func (c *quickAckConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	c.raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
	return n, err
}
