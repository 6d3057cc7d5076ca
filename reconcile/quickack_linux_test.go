package reconcile

import (
	"net"
	"syscall"
	"testing"
)

// A connection from quickAck re-arms TCP_QUICKACK after every read, so the
// host's sshd, which sends without TCP_NODELAY, is never left waiting for
// a delayed ACK before its next small write (a session's confirmation, a
// script's last line).
func TestQuickAckAfterEveryRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for _, m := range []string{"one", "two", "three"} {
			c.Write([]byte(m))
			var b [1]byte
			c.Read(b[:]) // the client's go-ahead
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn := quickAck(raw)
	if conn == raw {
		t.Fatal("quickAck did not wrap a TCP connection")
	}
	sc, _ := raw.(*net.TCPConn).SyscallConn()
	quick := func() int {
		v := -1
		sc.Control(func(fd uintptr) { v, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK) })
		return v
	}
	for i := 0; i < 3; i++ {
		// Leave quick ACK mode, as the kernel does after a while.
		sc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0) })
		var b [8]byte
		if _, err := conn.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		if q := quick(); q != 1 {
			t.Errorf("read %d: TCP_QUICKACK = %d after the read, want 1", i+1, q)
		}
		conn.Write([]byte{'.'})
	}
}
