#!/bin/busybox sh
# execbench guest /init for `python -m workloads.recorders.qemu.jitsize`: load
# real BPF objects with /bin/jitload and report their JIT sizes.
# Generated files read here: /etc/objects.txt (jitload's list, objects in
# /objs), /etc/probes.txt (one tracefs kprobe line), /etc/modules.order
# (modules holding fentry targets, dependencies first), /boot/config-<release>
# (libbpf's kconfig externs).  Everything the host needs is printed between
# @@BEGIN name@@ / @@END name@@ as gzip+base64, then @@DONE@@.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tracefs nodev /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
echo "1 4 1 7" > /proc/sys/kernel/printk
T=/sys/kernel/tracing
LOG=/tmp/log.txt
up() { cut -d' ' -f1 /proc/uptime; }
log() { echo "$(up) $*" >> $LOG; echo "@@LOG $(up) $*"; }
log "init start"
uname -r >> $LOG
for s in bpf_jit_enable bpf_jit_harden bpf_jit_kallsyms bpf_jit_limit; do
  echo "net.core.$s=$(cat /proc/sys/net/core/$s)" >> $LOG
done
echo "btf_vmlinux_bytes=$(wc -c < /sys/kernel/btf/vmlinux)" >> $LOG
while read -r path; do
  [ -z "$path" ] && continue
  insmod $path 2>> /tmp/insmod_err.txt || log "INSMOD_FAIL $path"
done < /etc/modules.order
echo "module_btf=$(ls /sys/kernel/btf | grep -v vmlinux | tr '\n' ' ')" >> $LOG
echo 0 > $T/tracing_on
echo 16384 > $T/buffer_size_kb
echo mono > $T/trace_clock
echo 0 > $T/options/sym-offset 2>/dev/null
while read -r line; do
  [ -z "$line" ] && continue
  echo "$line" >> $T/kprobe_events || log "PROBE_FAIL $line $(tail -n 1 $T/error_log)"
done < /etc/probes.txt
echo 1 > $T/events/kprobes/enable
# a reader drains trace_pipe into tmpfs while the objects load
( while true; do cat $T/trace_pipe; done ) >> /tmp/trace.txt 2>/dev/null &
READER=$!
echo 1 > $T/tracing_on
log "loading $(wc -l < /etc/objects.txt) objects"
/bin/jitload /etc/objects.txt > /tmp/jitload.txt 2> /tmp/jitload_err.txt
log "jitload rc=$? lines=$(wc -l < /tmp/jitload.txt)"
sleep 1
echo 0 > $T/tracing_on
sleep 1
kill $READER; kill $(pidof cat) 2>/dev/null
sleep 1
for c in $T/per_cpu/cpu*; do echo "== $c" >> /tmp/stats.txt; cat $c/stats >> /tmp/stats.txt; done
log "dump"
dump() { echo "@@BEGIN $1@@"; gzip -c "$2" | base64; echo "@@END $1@@"; }
for f in log jitload jitload_err insmod_err stats trace; do
  [ -f /tmp/$f.txt ] && dump $f /tmp/$f.txt
done
echo "@@DONE@@"
sync
poweroff -f
