package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the certificates and keys of a control plane, as files in a directory. Each set is
// made by one generate function, which makes nothing when its last file exists, so that a
// platform made before a set existed gains it on its next start.
type pki struct {
	dir string
}

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

// certLifetime is how long the platform's certificates are valid.
const certLifetime = 10 * 365 * 24 * time.Hour

// notBefore backdates certificates an hour, for clocks a little apart.
func notBefore() time.Time { return time.Now().Add(-time.Hour) }

// newCA makes a self-signed CA named cn.
func newCA(cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := notBefore()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: now, NotAfter: now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, der, err
}

// sign makes a key and a certificate of tmpl (its subject, usages and names) signed by ca.
func sign(ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	now := notBefore()
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial, now, now.Add(certLifetime)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	return der, key, err
}

// issue signs tmpl with ca and writes NAME.key, then NAME.crt.
func (p pki) issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, tmpl *x509.Certificate) error {
	der, key, err := sign(ca, caKey, tmpl)
	if err != nil {
		return err
	}
	if err := writeKey(p.path(name+".key"), key); err != nil {
		return err
	}
	return writeCert(p.path(name+".crt"), der)
}

func serverCert(cn string, ips []net.IP, names ...string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: ips, DNSNames: names}
}

func clientCert(user string, groups ...string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: user, Organization: groups}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}

// generate writes a CA, the API server's serving certificate (for loopback and the kubernetes
// Service's ClusterIP, serviceIP), an admin client certificate (group system:masters) and the
// service-account signing key pair, unless they exist.
func (p pki) generate(serviceIP net.IP) error {
	if _, err := os.Stat(p.path("admin.crt")); err == nil {
		return nil
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	ca, caKey, caDER, err := newCA("fn-local-ca")
	if err != nil {
		return err
	}
	if err := writeCert(p.path("ca.crt"), caDER); err != nil {
		return err
	}
	if err := writeKey(p.path("ca.key"), caKey); err != nil {
		return err
	}
	if err := p.issue(ca, caKey, "apiserver", serverCert("kube-apiserver",
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, serviceIP},
		"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")); err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeKey(p.path("sa.key"), saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.path("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return err
	}
	// The admin certificate is the last one written: its presence means the PKI is complete.
	return p.issue(ca, caKey, "admin", clientCert("fn-admin", "system:masters"))
}

// generateFrontProxy writes the aggregation layer's front-proxy CA and the client certificate the
// API server presents to aggregated API servers (metrics-server), unless they exist.
func (p pki) generateFrontProxy() error {
	if _, err := os.Stat(p.path("front-proxy-client.crt")); err == nil {
		return nil
	}
	ca, caKey, caDER, err := newCA("fn-local-front-proxy-ca")
	if err != nil {
		return err
	}
	if err := writeCert(p.path("front-proxy-ca.crt"), caDER); err != nil {
		return err
	}
	return p.issue(ca, caKey, "front-proxy-client", clientCert("front-proxy-client"))
}

// generateEtcd writes etcd's own CA (apart from the cluster's, so that no certificate the
// cluster's CA signs — the admin's, an agent's — opens etcd), etcd's serving certificate and the
// one client certificate etcd accepts, the API server's, unless they exist. The CA's key signs
// nothing more: it is not kept.
func (p pki) generateEtcd() error {
	if _, err := os.Stat(p.path("apiserver-etcd-client.crt")); err == nil {
		return nil
	}
	ca, caKey, caDER, err := newCA("fn-local-etcd-ca")
	if err != nil {
		return err
	}
	if err := writeCert(p.path("etcd-ca.crt"), caDER); err != nil {
		return err
	}
	if err := p.issue(ca, caKey, "etcd-server", serverCert("etcd", []net.IP{net.IPv4(127, 0, 0, 1)}, "localhost")); err != nil {
		return err
	}
	return p.issue(ca, caKey, "apiserver-etcd-client", clientCert("kube-apiserver-etcd-client"))
}

// generateKubeletClient writes the client certificate the API server presents to node agents'
// kubelet API (logs, exec, port forwarding), unless it exists: a member of system:masters, so
// that the agents' authorization lets it through.
func (p pki) generateKubeletClient() error {
	if _, err := os.Stat(p.path("apiserver-kubelet-client.crt")); err == nil {
		return nil
	}
	ca, caKey, err := p.loadCA()
	if err != nil {
		return err
	}
	return p.issue(ca, caKey, "apiserver-kubelet-client", clientCert("kube-apiserver-kubelet-client", "system:masters"))
}

// clientCertPEM issues a client certificate of the cluster's CA for user in groups, as PEM.
func (p pki) clientCertPEM(user string, groups []string) (certPEM, keyPEM []byte, err error) {
	ca, caKey, err := p.loadCA()
	if err != nil {
		return nil, nil, err
	}
	der, key, err := sign(ca, caKey, clientCert(user, groups...))
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// loadCA reads the cluster's CA certificate and key.
func (p pki) loadCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(p.path("ca.crt"))
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(p.path("ca.key"))
	if err != nil {
		return nil, nil, err
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil {
		return nil, nil, fmt.Errorf("the cluster CA in %s is not PEM", p.dir)
	}
	ca, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

func writeCert(path string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key: %w", err)
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}
