package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"text/template"
	"time"
)

// Proxy is a peer reverse proxy, nginx or HAProxy, run as its users run it in production in
// front of one upstream: a worker (or thread) per core, a pool of kept-alive connections to the
// upstream, an access log line per request to a file.
type Proxy struct {
	Name string
	URL  string // where it serves
	cmd  *exec.Cmd
}

// Stop stops the proxy and waits for it.
func (p *Proxy) Stop() {
	_ = p.cmd.Process.Kill()
	_, _ = p.cmd.Process.Wait()
}

// CPU is the CPU time the proxy has used: its process's and its children's (nginx's workers).
func (p *Proxy) CPU() time.Duration {
	pid := p.cmd.Process.Pid
	total := ProcessCPU(pid)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if child, err := strconv.Atoi(e.Name()); err == nil && ParentOf(child) == pid {
			total += ProcessCPU(child)
		}
	}
	return total
}

var nginxConf = template.Must(template.New("nginx").Parse(`daemon off;
master_process on;
worker_processes {{.Workers}};
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events { worker_connections 4096; }
http {
  access_log {{.Dir}}/access.log;
  client_body_temp_path {{.Dir}}/body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
  keepalive_requests 100000;
  upstream fn { server {{.Upstream}}; keepalive 128; keepalive_requests 100000; }
  server {
    listen {{.Listen}} reuseport;
    location / {
      proxy_pass http://fn;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`))

var haproxyConf = template.Must(template.New("haproxy").Parse(`global
  nbthread {{.Workers}}
  log stdout format raw local0 info
  maxconn 4096
defaults
  mode http
  log global
  option httplog
  option http-keep-alive
  option forwardfor
  http-reuse always
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fn
  bind {{.Listen}}
  default_backend fn
backend fn
  server upstream {{.Upstream}}
`))

// StartProxy starts nginx or HAProxy (name "nginx" or "haproxy") in front of upstream
// (host:port), its configuration, logs and access log under dir, and waits until it answers.
func StartProxy(ctx context.Context, name, upstream, dir string) (*Proxy, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	params := struct {
		Workers               int
		Dir, Listen, Upstream string
	}{Workers: runtime.NumCPU(), Dir: dir, Listen: listen, Upstream: upstream}
	conf := filepath.Join(dir, name+".conf")
	f, err := os.Create(conf)
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	switch name {
	case "nginx":
		bin, err := EnsureProgram("nginx", "nginx")
		if err == nil {
			err = nginxConf.Execute(f, params)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		cmd = exec.CommandContext(ctx, bin, "-p", dir, "-c", conf)
	case "haproxy":
		bin, err := EnsureProgram("haproxy", "haproxy")
		if err == nil {
			err = haproxyConf.Execute(f, params)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		cmd = exec.CommandContext(ctx, bin, "-f", conf)
		// Its access log is on stdout (as in a container): to a file, as the others write theirs.
		log, err := os.Create(filepath.Join(dir, "access.log"))
		if err != nil {
			f.Close()
			return nil, err
		}
		cmd.Stdout = log
	default:
		f.Close()
		return nil, fmt.Errorf("no proxy %q: nginx or haproxy", name)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	errLog, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = errLog
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proxy{Name: name, URL: "http://" + listen + "/", cmd: cmd}
	if err := WaitUp(p.URL); err != nil {
		p.Stop()
		b, _ := os.ReadFile(errLog.Name())
		return nil, fmt.Errorf("%s: %w\n%s", name, err, b)
	}
	return p, nil
}
