package diskspace

import (
	"errors"
	"testing"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 300 << 20: "300 MiB", 3 << 29: "1.5 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	free, err := Free(dir)
	if err != nil || free <= 0 {
		t.Fatalf("Free(%s) = %d, %v", dir, free, err)
	}
	if err := Check(0, dir, "/nonexistent/path"); err != nil {
		t.Errorf("Check with no reserve: %v", err)
	}
	err = Check(free+1<<40, "/nonexistent/path", dir)
	var low *LowError
	if !errors.As(err, &low) || low.Path != dir || low.Free <= 0 {
		t.Fatalf("Check over the free space: %v, want a LowError for %s", err, dir)
	}
}
