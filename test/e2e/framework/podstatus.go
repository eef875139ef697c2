package framework

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// PodRunning stands in for the scheduler and the kubelet this control plane has not, for a Pod
// whose container the test runs itself (say, the real ECK operator in a NetNS): it makes a
// Node object node (Ready, its InternalIP hostIP) unless it exists, binds the Pod to it
// through the pods/binding subresource as the scheduler does, and writes through the
// pods/status subresource what a kubelet reports once every container has started and is
// ready: phase Running, podIP and podIPs ip, hostIP, and the conditions PodScheduled,
// Initialized, ContainersReady and Ready all True. From there the rest is the cluster's own:
// kube-controller-manager's EndpointSlice controller puts ip in the EndpointSlices of the
// Services that select the Pod (it skips Pods whose Node it does not find, hence the Node).
// Nothing changes the status afterwards: there is no kubelet to overwrite it, nor a node
// lifecycle controller to mark the Node unreachable.
func (e *Env) PodRunning(ctx context.Context, namespace, name, node, hostIP, ip string) (*corev1.Pod, error) {
	pods := e.Clientset.CoreV1().Pods(namespace)
	pod, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if err := e.ensureNode(ctx, node, hostIP); err != nil {
		return nil, err
	}
	if pod.Spec.NodeName == "" {
		binding := &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}
		if err := pods.Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("binding Pod %s/%s to Node %s: %w", namespace, name, node, err)
		}
		if pod, err = pods.Get(ctx, name, metav1.GetOptions{}); err != nil {
			return nil, err
		}
	} else if pod.Spec.NodeName != node {
		return nil, fmt.Errorf("Pod %s/%s is bound to Node %s, not %s", namespace, name, pod.Spec.NodeName, node)
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP = hostIP
	pod.Status.HostIPs = []corev1.HostIP{{IP: hostIP}}
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	pod.Status.StartTime = &now
	pod.Status.Conditions = nil
	for _, c := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	pod.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	return pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
}

// ensureNode creates a Ready Node object named name with InternalIP ip, unless one exists.
func (e *Env) ensureNode(ctx context.Context, name, ip string) error {
	nodes := e.Clientset.CoreV1().Nodes()
	if _, err := nodes.Get(ctx, name, metav1.GetOptions{}); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	n, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating Node %s: %w", name, err)
	}
	now := metav1.Now()
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KubeletReady", Message: "stood in for by the test"}}
	if _, err := nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("Node %s status: %w", name, err)
	}
	return nil
}
