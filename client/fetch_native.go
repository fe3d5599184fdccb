//go:build !js

package client

import "net/http"

// roundTrip sends req with the client's http.Client.
func (a *api) roundTrip(req *http.Request) (*http.Response, error) { return a.http.Do(req) }
