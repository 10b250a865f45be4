package sextant

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runChild is the body of a child process (the test binary run again with
// SX_GO_CHILD set): "reader" checks snapshots until SX_GO_UNTIL, "writer" commits
// batches until then, "acker" commits batches for ever and prints "acked N" once
// commit N has returned (until it is killed).
func runChild(role string) int {
	path := os.Getenv("SX_GO_DB")
	until, _ := strconv.ParseInt(os.Getenv("SX_GO_UNTIL"), 10, 64)
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", role, err)
		return 1
	}
	var opts []Option
	if role == "acker" {
		opts = append(opts, WithSync(SyncFull))
	} else {
		opts = append(opts, WithSync(SyncNormal))
	}
	db, err := Open(path, opts...)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	switch role {
	case "reader":
		n := 0
		for time.Now().UnixNano() < until {
			err := db.View(func(tx *ReadTx) error { return checkSnapshot(ctx, tx, n) })
			if err != nil {
				return fail(err)
			}
			n++
		}
		fmt.Printf("sessions %d\n", n)
	case "writer", "acker":
		r, err := db.BeginRead()
		if err != nil {
			return fail(err)
		}
		uv, err := r.UserVersion()
		r.End()
		if err != nil {
			return fail(err)
		}
		w := bufio.NewWriter(os.Stdout)
		for b := int(uv) + 1; role == "acker" || time.Now().UnixNano() < until; b++ {
			if err := commitBatch(ctx, db, b); err != nil {
				return fail(err)
			}
			fmt.Fprintf(w, "acked %d\n", b)
			w.Flush()
		}
	default:
		return fail(fmt.Errorf("unknown role"))
	}
	return 0
}

func child(t *testing.T, role, path string, until time.Time) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SX_GO_CHILD="+role, "SX_GO_DB="+path,
		"SX_GO_UNTIL="+strconv.FormatInt(until.UnixNano(), 10))
	cmd.Stderr = os.Stderr
	return cmd
}

// Four reader processes and one writer process on one file, no lock of their own:
// every snapshot every reader sees keeps the invariants.
func TestProcessesReadersAndWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	path := filepath.Join(t.TempDir(), "p.sx")
	if err := createStress(path); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(stressDuration())
	var cmds []*exec.Cmd
	outs := make([]*strings.Builder, 5)
	for i := 0; i < 5; i++ {
		role := "reader"
		if i == 4 {
			role = "writer"
		}
		c := child(t, role, path, until)
		outs[i] = &strings.Builder{}
		c.Stdout = outs[i]
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *ReadTx) error { return checkSnapshot(context.Background(), tx, 7) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
	acks := strings.Count(outs[4].String(), "acked")
	if acks < 2 {
		t.Fatalf("the writer committed %d batches", acks)
	}
	t.Logf("writer: %d commits; readers: %s", acks, strings.ReplaceAll(outs[0].String()+outs[1].String()+outs[2].String()+outs[3].String(), "\n", " "))
}

// A writer killed with SIGKILL at random points: every commit it acknowledged is
// there after reopening, and the file passes its check.
func TestProcessKilledWriterLosesNoAcknowledgedCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	path := filepath.Join(t.TempDir(), "k.sx")
	if err := createStress(path); err != nil {
		t.Fatal(err)
	}
	rounds := 4
	if stressDuration() > 4*time.Second {
		rounds = 8
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < rounds; round++ {
		c := child(t, "acker", path, time.Now())
		out, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		acked := 0
		lines := make(chan int)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "acked ")); err == nil {
					lines <- n
				}
			}
			close(lines)
		}()
		kill := time.After(time.Duration(50+rng.Intn(250)) * time.Millisecond)
	loop:
		for {
			select {
			case n, ok := <-lines:
				if !ok {
					break loop
				}
				acked = n
			case <-kill:
				c.Process.Signal(syscall.SIGKILL)
				kill = nil
			}
		}
		c.Wait()
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		err = db.View(func(tx *ReadTx) error {
			uv, err := tx.UserVersion()
			if err != nil {
				return err
			}
			if int(uv) < acked {
				return fmt.Errorf("round %d: commit %d was acknowledged, the database holds %d", round, acked, uv)
			}
			return checkSnapshot(context.Background(), tx, round)
		})
		if err == nil {
			err = db.Check()
		}
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d acknowledged commits", round, acked)
	}
}
