package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// BadgerOptions configures the embedded store.
type BadgerOptions struct {
	// Dir holds the database files. Empty with InMemory set keeps everything in memory.
	Dir string
	// InMemory keeps the data in memory only (tests).
	InMemory bool
	// SyncWrites fsyncs every commit. Off by default: a commit is in the OS
	// page cache when Update returns, so a process crash loses nothing and a
	// machine crash can lose the last moments of writes.
	SyncWrites bool
	// Logger receives badger's own log lines at debug level.
	Logger *slog.Logger
	// Keyspaces, when given, are the declarations of the services that use
	// the store, checked as Redis checks them: a key outside them, or a
	// scan outside a scannable one, is an ErrKeyspace. Without them any
	// key goes (badger needs no index or hash tag).
	Keyspaces []Keyspace
}

// Badger is the embedded default store.
type Badger struct {
	db   *badger.DB
	ks   Keyspaces
	stop chan struct{}
	done chan struct{}
	// life orders Close after the calls in progress: a write that a
	// late follow-up starts while the process shuts down gets
	// badger.ErrDBClosed, instead of sending on the closed database's write
	// channel (a panic).
	life   sync.RWMutex
	closed bool
}

// OpenBadger opens (or creates) a badger store.
func OpenBadger(opts BadgerOptions) (*Badger, error) {
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(opts.SyncWrites).
		WithLogger(badgerLogger{opts.Logger}).
		WithNumVersionsToKeep(1).
		// Large memtables keep recent state in memory and the level-0 count
		// low (each level-0 table is one more place a read looks); no block
		// compression: state is small and CPU is what decisions wait on.
		WithMemTableSize(64 << 20).
		WithCompression(options.None).
		WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(128 << 20).
		WithIndexCacheSize(64 << 20).
		WithNumCompactors(2)
	ks, err := NewKeyspaces(opts.Keyspaces...)
	if err != nil {
		return nil, err
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open badger at %q: %w", opts.Dir, err)
	}
	b := &Badger{db: db, ks: ks, stop: make(chan struct{}), done: make(chan struct{})}
	go b.gcLoop()
	return b, nil
}

func (b *Badger) gcLoop() {
	defer close(b.done)
	if b.db.Opts().InMemory {
		return
	}
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			for b.db.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// Get implements Store.
func (b *Badger) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.check(key); err != nil {
		return nil, err
	}
	b.life.RLock()
	defer b.life.RUnlock()
	if b.closed {
		return nil, badger.ErrDBClosed
	}
	var out []byte
	err := b.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = badgerGet(txn, key)
		return err
	})
	return out, err
}

// Update implements Store; conflicting transactions are retried.
func (b *Badger) Update(ctx context.Context, fn func(tx Txn) error) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := b.update(ctx, fn)
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
	return ErrConflict
}

// update runs one attempt of a transaction. The commit is waited for only
// as long as ctx lasts: a disk that hangs in a write must not hold a
// decision past its budget. A commit given up on may still complete, as
// any write whose answer was lost.
func (b *Badger) update(ctx context.Context, fn func(tx Txn) error) error {
	done, err := b.begin(fn, ctx.Done() == nil)
	if done == nil || err != nil {
		return err
	}
	select {
	case err := <-done:
		// The commit's one send has been received: done is empty and no
		// one else holds it. (An update that gave up leaves it to badger.)
		commitDone.Put(done)
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitDone holds empty channels of commits already answered.
var commitDone = sync.Pool{New: func() any { return make(chan error, 1) }}

// begin runs fn in a new transaction and sends its commit, holding off
// Close until the commit is on its way. With wait it also waits for the
// commit (done is then nil); otherwise done delivers its result. A
// transaction that wrote nothing has nothing to commit (done nil).
func (b *Badger) begin(fn func(tx Txn) error, wait bool) (done chan error, err error) {
	b.life.RLock()
	defer b.life.RUnlock()
	if b.closed {
		return nil, badger.ErrDBClosed
	}
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	t := &badgerTxn{b: b, txn: txn}
	if err := fn(t); err != nil {
		return nil, err
	}
	if !t.wrote {
		return nil, nil
	}
	if wait {
		return nil, txn.Commit()
	}
	done = commitDone.Get().(chan error)
	txn.CommitWith(func(err error) { done <- err })
	return done, nil
}

// Scan implements Store.
func (b *Badger) Scan(ctx context.Context, opts ScanOptions) ([]Item, error) {
	if b.ks.Len() > 0 {
		if _, err := b.ks.checkScan(opts.Prefix); err != nil {
			return nil, err
		}
	}
	b.life.RLock()
	defer b.life.RUnlock()
	if b.closed {
		return nil, badger.ErrDBClosed
	}
	var items []Item
	err := b.db.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = opts.Prefix
		io.Reverse = opts.Reverse
		// Values are small and live in the LSM tree: fetching them ahead on
		// other goroutines costs more than it saves.
		io.PrefetchValues = false
		it := txn.NewIterator(io)
		defer it.Close()
		seek := opts.Prefix
		if opts.Reverse {
			// Reverse Seek lands on the largest key <= seek.
			seek = append(append([]byte(nil), opts.Prefix...), bytes.Repeat([]byte{0xff}, 16)...)
		}
		if opts.After != nil {
			seek = opts.After
		}
		for it.Seek(seek); it.ValidForPrefix(opts.Prefix); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			k := item.Key()
			if opts.After != nil && bytes.Equal(k, opts.After) {
				continue
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			items = append(items, Item{Key: item.KeyCopy(nil), Value: v})
			if opts.Limit > 0 && len(items) >= opts.Limit {
				return nil
			}
		}
		return nil
	})
	return items, err
}

// Close implements Store.
func (b *Badger) Close() error {
	b.life.Lock()
	defer b.life.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.stop)
	<-b.done
	return b.db.Close()
}

// DB exposes the underlying database to benchmarks that compare raw badger
// writes with the service path.
func (b *Badger) DB() *badger.DB { return b.db }

type badgerTxn struct {
	b   *Badger
	txn *badger.Txn
	// wrote: a read-only transaction has nothing to commit.
	wrote bool
}

func (t *badgerTxn) Get(key []byte) ([]byte, error) {
	if err := t.b.check(key); err != nil {
		return nil, err
	}
	return badgerGet(t.txn, key)
}

func (t *badgerTxn) Set(key, value []byte, ttl time.Duration) error {
	if err := t.b.check(key); err != nil {
		return err
	}
	e := badger.NewEntry(key, value)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	t.wrote = true
	return t.txn.SetEntry(e)
}

func (t *badgerTxn) Delete(key []byte) error {
	if err := t.b.check(key); err != nil {
		return err
	}
	t.wrote = true
	return t.txn.Delete(key)
}

// check refuses a key outside the declared keyspaces, when there are any.
func (b *Badger) check(key []byte) error {
	if b.ks.Len() == 0 {
		return nil
	}
	_, err := b.ks.check(key)
	return err
}

func badgerGet(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, f string, args ...any) {
	// Badger logs often; format only what the handler keeps.
	if b.l == nil || !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, fmt.Sprintf(f, args...), slog.String("component", "badger"))
}
func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a...) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a...) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a...) }
