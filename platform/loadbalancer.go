package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"fnkit.dev/fn/internal/tcpproxy"
)

// loadBalancer is the local platform's load balancer for one Service of type LoadBalancer (the
// gateway's, when fn's components run as pods): it listens on loopback and forwards each
// connection to a ready endpoint of the Service, read from its EndpointSlices, in turn; an
// endpoint that refuses is passed over for the next. Like a cloud's, it writes its address into
// the Service's status.loadBalancer.
type loadBalancer struct {
	kube       kubernetes.Interface
	namespace  string
	service    string
	targetPort string // the name of the Service's port in its EndpointSlices
	out        io.Writer

	mu        sync.Mutex
	endpoints []string // host:port of ready endpoints
	next      atomic.Uint64
}

// serveLoadBalancer runs a loadBalancer for namespace/service on ln until ctx ends.
func serveLoadBalancer(ctx context.Context, kube kubernetes.Interface, namespace, service, port string, ln net.Listener, out io.Writer) error {
	lb := &loadBalancer{kube: kube, namespace: namespace, service: service, targetPort: port, out: out}
	inf := informers.NewSharedInformerFactoryWithOptions(kube, time.Minute, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=" + service
		}))
	esi := inf.Discovery().V1().EndpointSlices()
	update := func(any) { lb.resync(esi.Lister()) }
	if _, err := esi.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: update, UpdateFunc: func(_, o any) { update(o) }, DeleteFunc: update,
	}); err != nil {
		return err
	}
	inf.Start(ctx.Done())
	defer inf.Shutdown()
	go lb.publish(ctx, ln.Addr().(*net.TCPAddr))
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go lb.forward(ctx, c)
	}
}

// resync takes the ready endpoints from the Service's EndpointSlices.
func (lb *loadBalancer) resync(lister discoverylisters.EndpointSliceLister) {
	list, err := lister.EndpointSlices(lb.namespace).List(labels.Everything())
	if err != nil {
		return
	}
	var eps []string
	for _, es := range list {
		port := int32(0)
		for _, p := range es.Ports {
			if p.Port != nil && (p.Name != nil && *p.Name == lb.targetPort || len(es.Ports) == 1) {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				eps = append(eps, net.JoinHostPort(a, strconv.Itoa(int(port))))
			}
		}
	}
	slices.Sort(eps)
	lb.mu.Lock()
	changed := !slices.Equal(eps, lb.endpoints)
	lb.endpoints = eps
	lb.mu.Unlock()
	if changed {
		fmt.Fprintf(lb.out, "load balancer %s/%s: endpoints %v\n", lb.namespace, lb.service, eps)
	}
}

// forward sends c to an endpoint: the next in turn that accepts it.
func (lb *loadBalancer) forward(ctx context.Context, c net.Conn) {
	lb.mu.Lock()
	eps := lb.endpoints
	lb.mu.Unlock()
	if len(eps) > 0 {
		first := int(lb.next.Add(1))
		d := net.Dialer{Timeout: 2 * time.Second}
		for i := range eps {
			up, err := d.DialContext(ctx, "tcp", eps[(first+i)%len(eps)])
			if err == nil {
				tcpproxy.Splice(ctx, c, up)
				return
			}
		}
	}
	c.Close() // the client sees its connection closed at once: nothing serves the Service
}

// publish writes the load balancer's address into the Service's status, once it exists.
func (lb *loadBalancer) publish(ctx context.Context, addr *net.TCPAddr) {
	for ctx.Err() == nil {
		svc, err := lb.kube.CoreV1().Services(lb.namespace).Get(ctx, lb.service, metav1.GetOptions{})
		if err == nil {
			ing := []corev1.LoadBalancerIngress{{IP: addr.IP.String(), Ports: []corev1.PortStatus{{Port: int32(addr.Port), Protocol: corev1.ProtocolTCP}}}}
			if slices.EqualFunc(svc.Status.LoadBalancer.Ingress, ing, func(a, b corev1.LoadBalancerIngress) bool { return a.IP == b.IP }) {
				return
			}
			svc.Status.LoadBalancer.Ingress = ing
			if _, err = lb.kube.CoreV1().Services(lb.namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err == nil {
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
