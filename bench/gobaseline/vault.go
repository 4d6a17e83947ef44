package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"

	vault "github.com/hashicorp/vault/api"
)

// vaultBaseline: what vault-csi-provider does per mount of a new pod (its
// client cache is keyed by the pod), minus its gRPC server, Kubernetes API
// reads and HMAC of the versions: a new client from DefaultConfig, a JWT
// login (POST, the answer parsed with api.ParseSecret), then per object one
// raw GET parsed with api.ParseSecret, the calls the peer makes.
type vaultBaseline struct {
	addr, role, jwt, authMount, prefix *string
}

func vaultFlags() *vaultBaseline {
	return &vaultBaseline{
		addr:      flag.String("addr", "", "vault: server address"),
		role:      flag.String("role", "", "vault: JWT auth role"),
		jwt:       flag.String("jwt", "", "vault: the pod's service account token"),
		authMount: flag.String("auth-mount", "jwt", "vault: JWT auth mount path"),
		prefix:    flag.String("path-prefix", "secret/data/bench/s", "vault: KV v2 path of object i is <prefix><i>"),
	}
}

func parsed(ctx context.Context, client *vault.Client, req *vault.Request) (*vault.Secret, error) {
	resp, err := client.RawRequestWithContext(ctx, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return vault.ParseSecret(resp.Body)
}

func (v *vaultBaseline) mount(objects int) mountFunc {
	return func(ctx context.Context) error {
		config := vault.DefaultConfig()
		if config.Error != nil {
			return config.Error
		}
		config.Address = *v.addr
		client, err := vault.NewClient(config)
		if err != nil {
			return err
		}
		login := client.NewRequest(http.MethodPost, "/v1/auth/"+*v.authMount+"/login")
		if err := login.SetJSONBody(map[string]string{"role": *v.role, "jwt": *v.jwt}); err != nil {
			return err
		}
		auth, err := parsed(ctx, client, login)
		if err != nil {
			return err
		}
		if auth == nil || auth.Auth == nil {
			return fmt.Errorf("vault login returned no token")
		}
		client.SetToken(auth.Auth.ClientToken)
		for i := 0; i < objects; i++ {
			req := client.NewRequest(http.MethodGet, fmt.Sprintf("/v1/%s%d", *v.prefix, i))
			secret, err := parsed(ctx, client, req)
			if err != nil {
				return err
			}
			if secret == nil || secret.Data["data"] == nil {
				return fmt.Errorf("vault object %d has no data", i)
			}
		}
		return nil
	}
}
