package h1

import (
	"net"
	"time"
)

// deadlines remembers the read and write deadlines set on a connection, so that a request moves
// them only when they must: each update changes a runtime timer, and a forwarded request would
// otherwise make five. A deadline asked for is kept when the one set is no earlier and at most
// deadlineSlack later; otherwise it is set deadlineSlack later than asked, so that the requests
// of the next moment find it in range. Deadlines thus fire up to deadlineSlack late.
type deadlines struct {
	nc          net.Conn
	read, write time.Time
}

// deadlineSlack is how late a deadline may fire.
const deadlineSlack = 250 * time.Millisecond

func inRange(set, want time.Time) bool {
	return !set.Before(want) && !set.After(want.Add(deadlineSlack))
}

// readBy makes reads fail after t (or up to deadlineSlack later).
func (d *deadlines) readBy(t time.Time) error {
	if inRange(d.read, t) {
		return nil
	}
	d.read = t.Add(deadlineSlack)
	return d.nc.SetReadDeadline(d.read)
}

// writeBy makes writes fail after t (or up to deadlineSlack later).
func (d *deadlines) writeBy(t time.Time) error {
	if inRange(d.write, t) {
		return nil
	}
	d.write = t.Add(deadlineSlack)
	return d.nc.SetWriteDeadline(d.write)
}

// by is readBy and writeBy.
func (d *deadlines) by(t time.Time) error {
	if inRange(d.read, t) && inRange(d.write, t) {
		return nil
	}
	d.read, d.write = t.Add(deadlineSlack), t.Add(deadlineSlack)
	return d.nc.SetDeadline(d.read)
}

// readExactly sets the read deadline to t exactly (the past: pending reads fail at once; zero:
// none).
func (d *deadlines) readExactly(t time.Time) error {
	d.read = t
	return d.nc.SetReadDeadline(t)
}
