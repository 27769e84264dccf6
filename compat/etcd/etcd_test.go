// Package etcd runs the real etcd server (go.etcd.io/etcd/server/v3, whose
// client and peer listeners are multiplexed with github.com/soheilhy/cmux)
// with github.com/cmux-go/cmux in place of soheilhy/cmux: go.mod replaces
// github.com/soheilhy/cmux by the shim module in /soheilhy, over the
// repository root.
package etcd

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// freeAddr returns a 127.0.0.1 address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func mustURL(t *testing.T, s string) url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return *u
}

// TestEmbedEtcdClose starts one etcd member, writes and reads a key through
// the client port (gRPC behind the mux), and requires Close to return
// within 10 s and both ports to be closed afterwards. With a mux whose
// child listeners do not close the root, Close hangs: etcd ends Serve by
// stopping its servers, which close their child listeners.
func TestEmbedEtcdClose(t *testing.T) {
	// A port found free may be taken before etcd binds it (other tests
	// run on this machine): try again with new ports.
	var e *embed.Etcd
	var clientAddr, peerAddr string
	for attempt := 0; ; attempt++ {
		clientAddr, peerAddr = freeAddr(t), freeAddr(t)
		cfg := embed.NewConfig()
		cfg.Name = "compat"
		cfg.Dir = t.TempDir()
		cfg.LogLevel = "error"
		cfg.ListenClientUrls = []url.URL{mustURL(t, "http://"+clientAddr)}
		cfg.AdvertiseClientUrls = cfg.ListenClientUrls
		cfg.ListenPeerUrls = []url.URL{mustURL(t, "http://"+peerAddr)}
		cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		var err error
		e, err = embed.StartEtcd(cfg)
		if err == nil {
			break
		}
		if attempt < 5 && strings.Contains(err.Error(), "address already in use") {
			t.Logf("StartEtcd: %v; trying other ports", err)
			continue
		}
		t.Fatalf("StartEtcd: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			// Do not hang the test binary: Close in the background.
			go e.Close()
		}
	}()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd failed before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("etcd not ready within 60 s")
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{clientAddr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("clientv3.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if _, err := cli.Put(ctx, "compat-key", "compat-value"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	resp, err := cli.Get(ctx, "compat-key")
	cancel()
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "compat-value" {
		t.Fatalf("Get = %v, want compat-value", resp.Kvs)
	}
	cli.Close()

	done := make(chan struct{})
	start := time.Now()
	go func() { e.Close(); close(done) }()
	select {
	case <-done:
		closed = true
		t.Logf("embed.Etcd.Close returned in %v", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("embed.Etcd.Close did not return within 10 s")
	}
	for _, a := range []string{clientAddr, peerAddr} {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", a)
		}
	}
}
