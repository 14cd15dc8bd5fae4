package h1

import (
	"net"
	"testing"
	"time"
)

// countingConn counts the deadline updates made on it.
type countingConn struct {
	net.Conn
	reads, writes int
	lastRead      time.Time
}

func (c *countingConn) SetReadDeadline(t time.Time) error { c.reads++; c.lastRead = t; return nil }
func (c *countingConn) SetWriteDeadline(time.Time) error  { c.writes++; return nil }
func (c *countingConn) SetDeadline(t time.Time) error {
	c.reads++
	c.writes++
	c.lastRead = t
	return nil
}

// TestDeadlines: a deadline asked for again a moment later does not move the connection's; one
// earlier than the one set, or later than its slack, does; an exact one always does.
func TestDeadlines(t *testing.T) {
	c := &countingConn{}
	d := deadlines{nc: c}
	base := time.Now()
	for i := range 100 { // 100 requests within 100 us: one update
		_ = d.readBy(base.Add(time.Minute + time.Duration(i)*time.Microsecond))
	}
	if c.reads != 1 || c.lastRead.Before(base.Add(time.Minute+99*time.Microsecond)) || c.lastRead.After(base.Add(time.Minute+deadlineSlack+time.Millisecond)) {
		t.Errorf("%d updates, deadline %s after base, want 1 within the slack", c.reads, c.lastRead.Sub(base))
	}
	_ = d.readBy(base.Add(time.Minute + 2*deadlineSlack)) // past the slack
	_ = d.readBy(base.Add(30 * time.Second))              // earlier than set: must not fire late by more than the slack
	if c.reads != 3 || c.lastRead.After(base.Add(30*time.Second+deadlineSlack)) {
		t.Errorf("%d updates, deadline %s after base, want 3 and the earlier deadline", c.reads, c.lastRead.Sub(base))
	}
	_ = d.readExactly(time.Unix(1, 0))
	_ = d.readBy(base.Add(30 * time.Second)) // after an exact past deadline, set again
	if c.reads != 5 {
		t.Errorf("%d updates, want 5", c.reads)
	}
	_ = d.by(base.Add(30 * time.Second)) // the write deadline was never set
	_ = d.by(base.Add(30 * time.Second))
	if c.writes != 1 || c.reads != 6 {
		t.Errorf("by: %d write and %d read updates, want 1 and 6", c.writes, c.reads)
	}
}
