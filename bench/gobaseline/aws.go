package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// awsBaseline: what the AWS provider (3.x, IRSA) does per mount, minus its
// gRPC server and Kubernetes API reads: a new STS client and config with a
// web identity role provider (one AssumeRoleWithWebIdentity per mount), a
// new Secrets Manager client, then one GetSecretValue per object.
type awsBaseline struct {
	endpoint, region, prefix, roleArn, token *string
}

func awsFlags() *awsBaseline {
	return &awsBaseline{
		endpoint: flag.String("endpoint", "", "aws: endpoint URL (moto)"),
		region:   flag.String("region", "us-east-1", "aws: region"),
		prefix:   flag.String("name-prefix", "", "aws: secret i is <prefix>/secret-%03d"),
		roleArn:  flag.String("role-arn", "", "aws: role assumed with the web identity token (empty: static credentials only)"),
		token:    flag.String("token", "", "aws: the pod's service account token for sts.amazonaws.com"),
	}
}

type staticToken string

func (t staticToken) GetIdentityToken() ([]byte, error) { return []byte(t), nil }

func (a *awsBaseline) mount(objects int) mountFunc {
	return func(ctx context.Context) error {
		// Without a role, static credentials x/x (moto accepts any). With one,
		// as the peer: AssumeRoleWithWebIdentity is unsigned, so its client
		// needs none.
		var creds aws.CredentialsProvider = credentials.NewStaticCredentialsProvider("x", "x", "")
		if *a.roleArn != "" {
			stsClient := sts.New(sts.Options{Region: *a.region, BaseEndpoint: a.endpoint})
			creds = stscreds.NewWebIdentityRoleProvider(stsClient, *a.roleArn, staticToken(*a.token))
		}
		cfg, err := config.LoadDefaultConfig(ctx,
			config.WithRegion(*a.region),
			config.WithCredentialsProvider(creds),
			config.WithBaseEndpoint(*a.endpoint),
		)
		if err != nil {
			return err
		}
		client := secretsmanager.NewFromConfig(cfg)
		for i := 0; i < objects; i++ {
			name := fmt.Sprintf("%s/secret-%03d", *a.prefix, i)
			out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &name})
			if err != nil {
				return err
			}
			if out.SecretString == nil {
				return fmt.Errorf("aws object %d has no SecretString", i)
			}
		}
		return nil
	}
}
