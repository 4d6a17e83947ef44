package main

import (
	"context"
	"flag"
	"fmt"

	vault "github.com/hashicorp/vault/api"
)

// vaultBaseline: what vault-csi-provider does per mount, minus its gRPC
// server and Kubernetes API reads: a new client, a JWT login, then one KV v2
// read per object (the response JSON-decoded by the client).
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

func (v *vaultBaseline) mount(objects int) mountFunc {
	return func(ctx context.Context) error {
		config := vault.DefaultConfig()
		config.Address = *v.addr
		client, err := vault.NewClient(config)
		if err != nil {
			return err
		}
		login, err := client.Logical().WriteWithContext(ctx, "auth/"+*v.authMount+"/login",
			map[string]interface{}{"role": *v.role, "jwt": *v.jwt})
		if err != nil {
			return err
		}
		if login == nil || login.Auth == nil {
			return fmt.Errorf("vault login returned no token")
		}
		client.SetToken(login.Auth.ClientToken)
		for i := 0; i < objects; i++ {
			secret, err := client.Logical().ReadWithContext(ctx, fmt.Sprintf("%s%d", *v.prefix, i))
			if err != nil {
				return err
			}
			if secret == nil || secret.Data["data"] == nil {
				return fmt.Errorf("vault object %d not found", i)
			}
		}
		return nil
	}
}
