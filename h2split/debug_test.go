package h2split

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func TestDebugServe(t *testing.T) {
	if os.Getenv("H2SPLIT_DEBUG_SERVE") == "" {
		t.Skip()
	}
	e := start(t, Config{})
	fmt.Println("ADDR", e.addr)
	os.WriteFile("/tmp/h2split-addr", []byte(e.addr), 0o600)
	time.Sleep(60 * time.Second)
}
