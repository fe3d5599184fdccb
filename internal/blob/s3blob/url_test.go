package s3blob

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Config
	}{
		{"s3://AK:SK@127.0.0.1:9000/blobs?tls=false", Config{Endpoint: "127.0.0.1:9000", AccessKey: "AK", SecretKey: "SK", Bucket: "blobs"}},
		{"s3://s3.eu-west-1.amazonaws.com/my.bucket-1/sandi/node-1/?region=eu-west-1", Config{Endpoint: "s3.eu-west-1.amazonaws.com", Bucket: "my.bucket-1", Prefix: "sandi/node-1/", TLS: true, Region: "eu-west-1"}},
		{"s3://a%2Fb:s%2Bc%2F%40d@[::1]:443/abc?tls=true", Config{Endpoint: "[::1]:443", AccessKey: "a/b", SecretKey: "s+c/@d", Bucket: "abc", TLS: true}},
		{"s3://minio/abc/", Config{Endpoint: "minio", Bucket: "abc", TLS: true}},
	} {
		got, err := ParseURL(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		if again, err := ParseURL(got.URL()); err != nil || again != got {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", got.URL(), again, err, got)
		}
	}
}

// TestParseURLErrors: each bad URL gets an error that says what is wrong
// and never shows the secret.
func TestParseURLErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "starts with s3://"},
		{"http://h/b", "starts with s3://"},
		{"s3:/h/b", "starts with s3://"},
		{"s3:///bucket", "names the server"},
		{"s3://h", "names the bucket"},
		{"s3://h/", "names the bucket"},
		{"s3://h:0/b12", "port"},
		{"s3://h:99999/b12", "port"},
		{"s3://h:x/b12", "port"},
		{"s3://h_1/b12", "not a host name"},
		{"s3://-h/b12", "not a host name"},
		{"s3://[1.2.3.4]/b12", "IPv6"},
		{"s3://[::1/b12", "IPv6"},
		{"s3://1:2:3::4/b12", "not a host name"},
		{"s3://h/B12", "bucket \"B12\""},
		{"s3://h/ab", "bucket \"ab\""},
		{"s3://h/a..b", "bucket"},
		{"s3://h/-ab", "bucket"},
		{"s3://h/b12/../x", "prefix segment \"..\""},
		{"s3://h/b12/a//b", "prefix segment \"\""},
		{"s3://h/b12/a%20b", "no percent-encoding"},
		{"s3://h/b12?tls=maybe", "tls=\"maybe\""},
		{"s3://h/b12?tls=false&tls=true", "given 2 times"},
		{"s3://h/b12?region=EU%20", "region"},
		{"s3://h/b12?secure=no", "unknown parameter \"secure\""},
		{"s3://h/b12#frag", "has the form"},
		{"s3://AK@h/b12", "both not empty"},
		{"s3://AK:@h/b12", "both not empty"},
		{"s3://:topsecret@h/b12", "both not empty"},
		{"s3://AK:Zq%00Xw@h/b12", "not printable"},
		{"s3://AK:Zq Xw@h/b12", "not a valid URL"},
		{"s3://AK:ZqXw@h:x/b12", "port"},
	} {
		_, err := ParseURL(c.in)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded, want an error about %s", c.in, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseURL(%q) = %v, want an error about %s", c.in, err, c.want)
		}
		if strings.Contains(err.Error(), "Zq") {
			t.Errorf("ParseURL(%q) = %v: the error shows the secret", c.in, err)
		}
	}
}

func TestConfigString(t *testing.T) {
	c, err := ParseURL("s3://AK:verysecret@h:9000/b12?tls=false")
	if err != nil {
		t.Fatal(err)
	}
	if s := c.String(); strings.Contains(s, "verysecret") || !strings.Contains(s, "AK") || !strings.Contains(s, "h:9000/b12") {
		t.Fatalf("String() = %s, want the URL without its secret", s)
	}
}

// FuzzParseURL: ParseURL never panics, what it accepts holds to its
// rules, and a Config written as a URL reads back the same.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"s3://AK:SK@127.0.0.1:9000/blobs?tls=false",
		"s3://a%2Fb:s%2Bc%2F%40d@[::1]:443/abc/p/q/?tls=true&region=us-east-1",
		"s3://h/b12#x", "s3://h:0/b", "s3://[fe80::1%25eth0]/b12",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseURL(s)
		if err != nil {
			return
		}
		if checkBucket(c.Bucket) != nil || checkEndpoint(c.Endpoint) != nil || (c.AccessKey == "") != (c.SecretKey == "") {
			t.Fatalf("ParseURL(%q) accepted %+v", s, c)
		}
		if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
			t.Fatalf("ParseURL(%q): prefix %q does not end in /", s, c.Prefix)
		}
		again, err := ParseURL(c.URL())
		if err != nil || again != c {
			t.Fatalf("ParseURL(%q) = %+v, but its URL %q reads as %+v, %v", s, c, c.URL(), again, err)
		}
	})
}
