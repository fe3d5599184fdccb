package s3blob

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Config is where a Store keeps its objects, parsed from a URL
//
//	s3://ACCESS:SECRET@HOST[:PORT]/BUCKET[/PREFIX][?tls=false&region=REGION]
//
// ACCESS and SECRET are percent-encoded (a secret with '/' or '+' is
// written %2F, %2B); without them Open takes AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY from the environment. TLS is on unless tls=false.
// PREFIX, when given, is put before every object's key, so several
// servers can share a bucket.
type Config struct {
	Endpoint  string // host or host:port
	AccessKey string
	SecretKey string
	Bucket    string
	Prefix    string // "" or path segments ending in "/"
	TLS       bool
	Region    string // "" lets the client ask the server
}

// Scheme starts every URL ParseURL accepts.
const Scheme = "s3://"

// ParseURL parses an s3:// URL. Its errors never contain the secret.
func ParseURL(s string) (Config, error) {
	var c Config
	if !strings.HasPrefix(s, Scheme) {
		return c, errors.New("an S3 URL starts with s3://")
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's errors quote the URL, secret and all: say what is
		// wrong in other words.
		switch msg := err.Error(); {
		case strings.Contains(msg, "port"):
			return c, errors.New("the server's port is a number from 1 to 65535")
		case strings.Contains(msg, "host") || strings.Contains(msg, "IP"):
			return c, errors.New("the server is a host name, an IPv4 address or [an IPv6 address]")
		default:
			return c, errors.New("not a valid URL (percent-encode a secret key's '/', '+', '@', ':', '%' and spaces)")
		}
	}
	if u.Opaque != "" || u.Fragment != "" || u.RawFragment != "" || strings.HasSuffix(s, "#") {
		return c, errors.New("an S3 URL has the form s3://ACCESS:SECRET@HOST[:PORT]/BUCKET[/PREFIX][?tls=false&region=REGION]")
	}
	if u.User != nil {
		secret, ok := u.User.Password()
		c.AccessKey, c.SecretKey = u.User.Username(), secret
		if !ok || c.AccessKey == "" || c.SecretKey == "" {
			return c, errors.New("credentials in an S3 URL are ACCESS:SECRET@, both not empty (or leave them out and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
		}
		if err := checkKey(c.AccessKey, "access key"); err != nil {
			return c, err
		}
		if err := checkKey(c.SecretKey, "secret key"); err != nil {
			return c, err
		}
	}
	if err := checkEndpoint(u.Host); err != nil {
		return c, err
	}
	c.Endpoint = u.Host
	path := u.EscapedPath()
	if path != u.Path {
		return c, errors.New("the bucket and prefix of an S3 URL are plain letters, digits and - _ . / (no percent-encoding)")
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if err := checkBucket(bucket); err != nil {
		return c, err
	}
	c.Bucket = bucket
	if prefix != "" {
		prefix = strings.TrimSuffix(prefix, "/")
		for seg := range strings.SplitSeq(prefix, "/") {
			if err := checkSegment(seg); err != nil {
				return c, err
			}
		}
		c.Prefix = prefix + "/"
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return c, errors.New("the query of an S3 URL is tls=true|false and region=REGION")
	}
	c.TLS = true
	for k, vs := range q {
		if len(vs) != 1 {
			return c, fmt.Errorf("%s given %d times in the S3 URL", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "tls":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("tls=%q: true or false", v)
			}
			c.TLS = b
		case "region":
			if err := checkRegion(v); err != nil {
				return c, err
			}
			c.Region = v
		default:
			return c, fmt.Errorf("unknown parameter %q in the S3 URL (known: tls, region)", k)
		}
	}
	return c, nil
}

// URL is c as a URL that ParseURL reads back as c.
func (c Config) URL() string {
	u := url.URL{Scheme: "s3", Host: c.Endpoint, Path: "/" + c.Bucket + "/" + c.Prefix}
	if c.Prefix == "" {
		u.Path = "/" + c.Bucket
	}
	if c.AccessKey != "" || c.SecretKey != "" {
		u.User = url.UserPassword(c.AccessKey, c.SecretKey)
	}
	q := url.Values{}
	if !c.TLS {
		q.Set("tls", "false")
	}
	if c.Region != "" {
		q.Set("region", c.Region)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// String is c without its secret key, for logs and errors.
func (c Config) String() string {
	if c.SecretKey != "" {
		c.SecretKey = "xxxxx"
	}
	return c.URL()
}

func checkKey(k, what string) error {
	if len(k) > 256 {
		return fmt.Errorf("the %s in the S3 URL is longer than 256 bytes", what)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return fmt.Errorf("the %s in the S3 URL has a character that is not printable ASCII", what)
		}
	}
	return nil
}

func checkEndpoint(host string) error {
	if host == "" {
		return errors.New("an S3 URL names the server: s3://ACCESS:SECRET@HOST[:PORT]/BUCKET")
	}
	name := host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		name = host[:i]
		if n, err := strconv.Atoi(host[i+1:]); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("server %q: the port is a number from 1 to 65535", host)
		}
	}
	if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
		if ip := net.ParseIP(name[1 : len(name)-1]); ip == nil || ip.To4() != nil {
			return fmt.Errorf("server %q: not an IPv6 address in brackets", host)
		}
		return nil
	}
	if len(name) > 253 {
		return fmt.Errorf("server %q: a host name is at most 253 characters", host)
	}
	for label := range strings.SplitSeq(name, ".") {
		bad := label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-'
		for i := 0; i < len(label) && !bad; i++ {
			bad = !isAlnum(label[i]) && label[i] != '-'
		}
		if bad {
			return fmt.Errorf("server %q: not a host name, IPv4 address or [IPv6 address]", host)
		}
	}
	return nil
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// checkBucket holds a bucket name to S3's rules: 3 to 63 of [a-z0-9.-],
// starting and ending with a letter or digit, no "..".
func checkBucket(b string) error {
	if b == "" {
		return errors.New("an S3 URL names the bucket: s3://ACCESS:SECRET@HOST[:PORT]/BUCKET")
	}
	bad := len(b) < 3 || len(b) > 63 || strings.Contains(b, "..") || !isLowerAlnum(b[0]) || !isLowerAlnum(b[len(b)-1])
	for i := 0; i < len(b) && !bad; i++ {
		bad = !isLowerAlnum(b[i]) && b[i] != '-' && b[i] != '.'
	}
	if bad {
		return fmt.Errorf("bucket %q: 3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit", b)
	}
	return nil
}

func isLowerAlnum(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }

// checkSegment holds a segment of the key prefix to letters, digits and
// - _ . (not "." or ".."), at most 64 bytes.
func checkSegment(s string) error {
	bad := s == "" || s == "." || s == ".." || len(s) > 64
	for i := 0; i < len(s) && !bad; i++ {
		bad = !isAlnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.'
	}
	if bad {
		return fmt.Errorf("key prefix segment %q: 1 to 64 letters, digits, '-', '_' and '.', not . or ..", s)
	}
	return nil
}

func checkRegion(r string) error {
	bad := r == "" || len(r) > 64
	for i := 0; i < len(r) && !bad; i++ {
		bad = !isLowerAlnum(r[i]) && r[i] != '-' && r[i] != '_'
	}
	if bad {
		return fmt.Errorf("region %q: lowercase letters, digits, '-' and '_'", r)
	}
	return nil
}
