package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// client talks HTTP from the root namespace: no proxy from the environment,
// no keep-alive (a test must see each request reach a fresh connection).
var client = &http.Client{
	Timeout: 3 * time.Second,
	Transport: &http.Transport{
		Proxy:             nil,
		DialContext:       (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		DisableKeepAlives: true,
	},
}

// slowClient is client with time for a node's SlowPath.
var slowClient = &http.Client{
	Timeout:   SlowFor + 10*time.Second,
	Transport: client.Transport,
}

// GetSlow is Get with a timeout of SlowFor + 10 s, for a node's SlowPath.
func (l *Lab) GetSlow(ctx context.Context, url string) (string, error) {
	return get(ctx, slowClient, url)
}

// Get sends an HTTP GET from the root namespace (3 s timeout) and returns
// the body. A status other than 200 is an error; the body is returned too.
func (l *Lab) Get(ctx context.Context, url string) (string, error) {
	return get(ctx, client, url)
}

func get(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("get %s: status %s", url, resp.Status)
	}
	return string(b), nil
}
