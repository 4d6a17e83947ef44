package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// azureBaseline: what the Azure provider does per mount with workload
// identity, minus its gRPC server: a new ClientAssertionCredential (one token
// request to Azure AD per mount) and a new azsecrets client (401 challenge,
// then the bearer token), then one GetSecret per object. The stand-in's own
// CA is trusted through the SDK's transport option.
type azureBaseline struct {
	vaultURL, authority, tenant, clientID, assertion, caFile, prefix *string
	transport                                                        *http.Client
}

func azureFlags() *azureBaseline {
	return &azureBaseline{
		vaultURL:  flag.String("vault-url", "", "azure: Key Vault URL"),
		authority: flag.String("authority", "", "azure: Azure AD authority host URL"),
		tenant:    flag.String("tenant", "", "azure: tenant ID"),
		clientID:  flag.String("client-id", "", "azure: workload identity client ID"),
		assertion: flag.String("assertion", "", "azure: the pod's token for api://AzureADTokenExchange"),
		caFile:    flag.String("ca-file", "", "azure: CA bundle (PEM) the servers' certificates chain to"),
		prefix:    flag.String("secret-prefix", "bench-", "azure: secret i is <prefix><i>"),
	}
}

func (z *azureBaseline) client() (*http.Client, error) {
	if z.transport != nil {
		return z.transport, nil
	}
	pem, err := os.ReadFile(*z.caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", *z.caFile)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	// One transport for the process, as the SDK's default one is shared:
	// connections are reused across mounts in the peer too.
	z.transport = &http.Client{Transport: transport}
	return z.transport, nil
}

func (z *azureBaseline) mount(objects int) mountFunc {
	return func(ctx context.Context) error {
		httpClient, err := z.client()
		if err != nil {
			return err
		}
		options := azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: *z.authority},
			Transport: httpClient,
		}
		assertion := *z.assertion
		cred, err := azidentity.NewClientAssertionCredential(*z.tenant, *z.clientID,
			func(context.Context) (string, error) { return assertion, nil },
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: options, DisableInstanceDiscovery: true})
		if err != nil {
			return err
		}
		// The stand-in's challenge names https://vault.azure.net, not 127.0.0.1.
		client, err := azsecrets.NewClient(*z.vaultURL, cred, &azsecrets.ClientOptions{
			ClientOptions: options, DisableChallengeResourceVerification: true,
		})
		if err != nil {
			return err
		}
		for i := 0; i < objects; i++ {
			resp, err := client.GetSecret(ctx, fmt.Sprintf("%s%d", *z.prefix, i), "", nil)
			if err != nil {
				return err
			}
			if resp.Value == nil {
				return fmt.Errorf("azure object %d has no value", i)
			}
		}
		return nil
	}
}
