// Command compat-go is the Go driver of the compatibility matrix (test/compat/compat.test.ts): it runs the real
// azidentity credentials against whatever managed-identity endpoint the process environment selects (the
// environment is exactly what the webhook injects for one profile) and prints one JSON result line per variant.
//
// Input: one JSON argument, the same shape for every language (see test/compat/drivers/protocol.ts):
// {"resource","counterUrl","callTimeoutMs","variants":[{"id","credential":"default"|"managed-identity",
// "selector":{"kind":"client-id"|"resource-id"|"object-id","value"},"expectedAppId"}]}.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

type selector struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

type variant struct {
	ID            string    `json:"id"`
	Credential    string    `json:"credential"`
	Selector      *selector `json:"selector"`
	ExpectedAppID string    `json:"expectedAppId"`
}

type input struct {
	Resource      string    `json:"resource"`
	CounterURL    string    `json:"counterUrl"`
	CallTimeoutMs int       `json:"callTimeoutMs"`
	Variants      []variant `json:"variants"`
	// ClientCache false: the release keeps no token cache in its credential; the second-call rule is then the
	// CLIs' one (same token and expiry). Absent = true.
	ClientCache *bool `json:"clientCache"`
}

type observed struct {
	Requests1  int    `json:"requests1"`
	Requests2  int    `json:"requests2"`
	ExpiresOn1 int64  `json:"expiresOn1"`
	ExpiresOn2 int64  `json:"expiresOn2"`
	SameToken  bool   `json:"sameToken"`
	Aud        string `json:"aud"`
	AppID      string `json:"appid"`
	Exp        int64  `json:"exp"`
}

type result struct {
	Variant  string            `json:"variant"`
	Status   string            `json:"status"`
	Error    string            `json:"error,omitempty"`
	Observed *observed         `json:"observed,omitempty"`
	Versions map[string]string `json:"versions"`
}

func versions() map[string]string {
	v := map[string]string{}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			switch d.Path {
			case "github.com/Azure/azure-sdk-for-go/sdk/azidentity":
				v["azidentity"] = d.Version
			case "github.com/Azure/azure-sdk-for-go/sdk/azcore":
				v["azcore"] = d.Version
			case "github.com/AzureAD/microsoft-authentication-library-for-go":
				v["microsoft-authentication-library-for-go"] = d.Version
			}
		}
		v["go"] = info.GoVersion
	}
	return v
}

func count(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Count int `json:"count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	return body.Count, nil
}

func claims(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("access token is not a JWT (%d segments)", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	return out, json.Unmarshal(raw, &out)
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// No retries and a bounded try: every supported cell is answered at once by the sidecar, and a cell that falls back
// to 169.254.169.254 (azidentity ignores AZURE_POD_IDENTITY_AUTHORITY_HOST) must fail within seconds, with the
// client's own error and a single request there, instead of azidentity's IMDS default of 6 retries up to 25 s apart.
func clientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1, TryTimeout: 10 * time.Second}}
}

func credential(v variant) (azcore.TokenCredential, error) {
	if v.Credential == "default" {
		return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: clientOptions()})
	}
	o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: clientOptions()}
	if v.Selector != nil {
		switch v.Selector.Kind {
		case "client-id":
			o.ID = azidentity.ClientID(v.Selector.Value)
		case "resource-id":
			o.ID = azidentity.ResourceID(v.Selector.Value)
		case "object-id":
			id, err := objectID(v.Selector.Value)
			if err != nil {
				return nil, err
			}
			o.ID = id
		default:
			return nil, fmt.Errorf("driver: unknown selector kind %q", v.Selector.Kind)
		}
	}
	return azidentity.NewManagedIdentityCredential(o)
}

func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 1500 {
		s = s[:1500] + "…"
	}
	return s
}

func run(in input, v variant) result {
	r := result{Variant: v.ID, Versions: versions()}
	scope := strings.TrimSuffix(in.Resource, "/") + "/.default"
	if strings.HasSuffix(in.Resource, "/") {
		scope = in.Resource + ".default"
	}
	get := func(cred azcore.TokenCredential) (azcore.AccessToken, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(in.CallTimeoutMs)*time.Millisecond)
		defer cancel()
		return cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	}
	before, err := count(in.CounterURL)
	if err != nil {
		r.Status, r.Error = "fail", "driver: request counter: "+err.Error()
		return r
	}
	cred, err := credential(v)
	if err != nil {
		r.Status, r.Error = "unsupported", oneLine(err)
		return r
	}
	t1, err := get(cred)
	if err != nil {
		r.Status, r.Error = "unsupported", oneLine(err)
		return r
	}
	mid, _ := count(in.CounterURL)
	t2, err := get(cred)
	if err != nil {
		r.Status, r.Error = "fail", "second call failed: "+oneLine(err)
		return r
	}
	after, _ := count(in.CounterURL)
	c, err := claims(t1.Token)
	if err != nil {
		r.Status, r.Error = "fail", err.Error()
		return r
	}
	exp, _ := c["exp"].(float64)
	o := &observed{Requests1: mid - before, Requests2: after - mid, ExpiresOn1: t1.ExpiresOn.Unix(), ExpiresOn2: t2.ExpiresOn.Unix(),
		SameToken: t1.Token == t2.Token, Aud: str(c, "aud"), AppID: str(c, "appid"), Exp: int64(exp)}
	r.Observed = o
	r.Status = "ok"
	if problems := check(in, v, o); len(problems) > 0 {
		r.Status, r.Error = "fail", strings.Join(problems, "; ")
	}
	return r
}

// check applies the matrix's acceptance rules (the same in every driver; test/compat/drivers/protocol.ts).
func check(in input, v variant, o *observed) []string {
	var p []string
	now := time.Now().Unix()
	if o.Requests1 < 1 {
		p = append(p, "first call did not reach the endpoint under test")
	}
	if o.Requests2 != 0 && (in.ClientCache == nil || *in.ClientCache) {
		p = append(p, fmt.Sprintf("second call was not served from the client's cache (%d more token requests reached the endpoint)", o.Requests2))
	}
	// Without a client cache each call is answered anew; a release that derives the expiry from expires_in may
	// then move it by a second.
	tolerance := int64(0)
	if in.ClientCache != nil && !*in.ClientCache {
		tolerance = 2
	}
	if d := o.ExpiresOn1 - o.ExpiresOn2; !o.SameToken || d > tolerance || d < -tolerance {
		p = append(p, "second call returned a different token or expiry")
	}
	if o.ExpiresOn1 < now+300 {
		p = append(p, fmt.Sprintf("expiry %d is not far in the future (now %d)", o.ExpiresOn1, now))
	}
	if d := o.ExpiresOn1 - o.Exp; d > 120 || d < -120 {
		p = append(p, fmt.Sprintf("expiry %d differs from the token's exp %d", o.ExpiresOn1, o.Exp))
	}
	if o.Aud != strings.TrimSuffix(in.Resource, "/") && o.Aud != in.Resource {
		p = append(p, fmt.Sprintf("aud %q, expected %q", o.Aud, in.Resource))
	}
	if o.AppID != v.ExpectedAppID {
		p = append(p, fmt.Sprintf("appid %q, expected %q", o.AppID, v.ExpectedAppID))
	}
	return p
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compat-go '<json input>'")
		os.Exit(2)
	}
	var in input
	if err := json.Unmarshal([]byte(os.Args[1]), &in); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	if in.CallTimeoutMs <= 0 {
		in.CallTimeoutMs = 15000
	}
	enc := json.NewEncoder(os.Stdout)
	for _, v := range in.Variants {
		if err := enc.Encode(run(in, v)); err != nil {
			fmt.Fprintln(os.Stderr, errors.Join(err))
			os.Exit(1)
		}
	}
}
