//go:build !linux

package reconcile

import "net"

// quickAck is conn as it is: TCP_QUICKACK is Linux's.
func quickAck(conn net.Conn) net.Conn { return conn }
