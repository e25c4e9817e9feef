#!/bin/sh
# The kernel door for one pod: prints a Job that runs on the pod's node and attaches (or, with
# --detach, detaches) tcp-keepalive's cgroup BPF programs at that pod's cgroup only. The
# attachment covers every container of the pod, restarted ones too, and its connections already
# open are changed in place. Apply the output:
#
#   ./pod-attach.sh report-client-7d9f -n reports | kubectl apply -f -
#   ./pod-attach.sh --detach report-client-7d9f -n reports | kubectl apply -f -
#
# Options: -n NAMESPACE (default: kubectl's), --image IMAGE, --driver systemd|cgroupfs (default:
# read from the kubelet's configz, which needs nodes/proxy access), and after `--` the attach
# options (default: --idle 60s --interval 10s --count 6). Without kubectl, give the pod's facts:
# --uid UID --qos Guaranteed|Burstable|BestEffort --node NODE --driver D.
set -eu

image=registry.example.com/tcp-keepalive:0.1.0
action=attach
namespace= pod= uid= qos= node= driver=
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --detach) action=detach ;;
        -n | --namespace) namespace=$2; shift ;;
        --image) image=$2; shift ;;
        --driver) driver=$2; shift ;;
        --uid) uid=$2; shift ;;
        --qos) qos=$2; shift ;;
        --node) node=$2; shift ;;
        --) shift; break ;;
        -h | --help) usage ;;
        -*) echo "pod-attach.sh: unknown option $1" >&2; usage ;;
        *) [ -z "$pod" ] || usage; pod=$1 ;;
    esac
    shift
done
[ $# -gt 0 ] || set -- --idle 60s --interval 10s --count 6

if [ -z "$uid" ] || [ -z "$qos" ] || [ -z "$node" ]; then
    [ -n "$pod" ] || usage
    facts=$(kubectl get pod "$pod" ${namespace:+-n "$namespace"} \
        -o jsonpath='{.metadata.uid} {.status.qosClass} {.spec.nodeName}')
    set -f
    # shellcheck disable=SC2086 # three words: uid, QoS class, node
    set -- $facts -- "$@"
    set +f
    uid=$1 qos=$2 node=$3
    shift 4
fi
if [ -z "$driver" ]; then
    driver=$(kubectl get --raw "/api/v1/nodes/$node/proxy/configz" |
        sed -n 's/.*"cgroupDriver":"\([a-z]*\)".*/\1/p')
fi

# The pod's cgroup below the kubepods cgroup, as the kubelet names it.
case $qos in
    Guaranteed) class= ;;
    Burstable) class=burstable ;;
    BestEffort) class=besteffort ;;
    *) echo "pod-attach.sh: QoS class '$qos': want Guaranteed, Burstable or BestEffort" >&2; exit 2 ;;
esac
case $driver in
    systemd)
        unit=$(printf '%s' "$uid" | tr - _)
        if [ -z "$class" ]; then path=kubepods.slice/kubepods-pod$unit.slice
        else path=kubepods.slice/kubepods-$class.slice/kubepods-$class-pod$unit.slice; fi ;;
    cgroupfs)
        path=kubepods/${class:+$class/}pod$uid ;;
    *) echo "pod-attach.sh: cgroup driver '$driver': want systemd or cgroupfs (--driver)" >&2; exit 2 ;;
esac
case $uid in
    *[!0-9a-f-]* | "") echo "pod-attach.sh: pod UID '$uid' is not a UID" >&2; exit 2 ;;
esac

args="\"cgroup\", \"$action\", \"/host/sys/fs/cgroup/$path\""
if [ "$action" = attach ]; then
    for a in "$@"; do args="$args, \"$a\""; done
fi
short=$(printf '%s' "$uid" | cut -c1-8)
cat <<YAML
# $action the kernel door at ${pod:-the pod} ($uid, $qos) on node $node ($driver cgroup driver)
apiVersion: batch/v1
kind: Job
metadata:
  name: tcp-keepalive-$action-$short
  namespace: tcp-keepalive
spec:
  backoffLimit: 2
  ttlSecondsAfterFinished: 600
  template:
    metadata:
      labels:
        app.kubernetes.io/name: tcp-keepalive-$action
    spec:
      nodeName: $node
      restartPolicy: Never
      hostPID: true
      automountServiceAccountToken: false
      tolerations:
        - operator: Exists
      containers:
        - name: $action
          image: $image
          args: [$args]
          env:
            - {name: TCP_KEEPALIVE_PIN_ROOT, value: /host/sys/fs/bpf/tcp-keepalive}
          securityContext:
            privileged: false
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsUser: 0
            capabilities:
              drop: ["ALL"]
              add: ["BPF", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"]
            seccompProfile:
              type: Unconfined
          volumeMounts:
            - {name: cgroup, mountPath: /host/sys/fs/cgroup, readOnly: true}
            - {name: bpffs, mountPath: /host/sys/fs/bpf}
      volumes:
        - {name: cgroup, hostPath: {path: /sys/fs/cgroup, type: Directory}}
        - {name: bpffs, hostPath: {path: /sys/fs/bpf, type: Directory}}
YAML
