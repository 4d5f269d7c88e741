#!/bin/busybox sh
# execbench guest /init: record the kernel's executable-memory events.
# Generated files read here: /etc/probes.txt, /etc/modules.order (path per line,
# dependency order), /etc/rmmod.order (module names), /etc/wkprobes.txt (kprobe
# targets), /etc/ftrace.txt (instance|filter|update-filter).  Everything the host
# needs is printed between @@BEGIN name@@ / @@END name@@ as gzip+base64.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
@CONSOLE@
mount -t tmpfs tmp /tmp
mount -t tracefs nodev /sys/kernel/tracing
# pitfall 3: keep kernel messages off the console; pitfall 4: real addresses
echo "1 4 1 7" > /proc/sys/kernel/printk
echo 1 > /proc/sys/kernel/kptr_restrict
T=/sys/kernel/tracing
LOG=/tmp/log.txt
up() { cut -d' ' -f1 /proc/uptime; }
log() { echo "$(up) $*" >> $LOG; echo "@@LOG $(up) $*"; }
# every step also logs the direct map's 2 MiB split count before it starts, so the
# host can tell which step split (guest/vmstat_steps.txt: "<splits> <marker>")
mark() { echo "$*" > $T/trace_marker
         echo "$(grep '^direct_map_level2_splits ' /proc/vmstat | cut -d' ' -f2) $*" >> /tmp/vmstat_steps.txt; }
log "init start"
uname -r >> $LOG
echo 0 > $T/tracing_on
echo @BUFKB@ > $T/buffer_size_kb
echo mono > $T/trace_clock
echo 0 > $T/options/sym-offset 2>/dev/null

# --- recording probes (refused lines are skipped and reported) ---
: > /tmp/probe_status.txt
while IFS='|' read -r line name filter stack; do
  [ -z "$line" ] && continue
  if echo "$line" >> $T/kprobe_events 2>/dev/null; then
    echo "PROBE_OK $name :: $line" >> /tmp/probe_status.txt
    if [ -n "$filter" ]; then
      echo "$filter" > $T/events/kprobes/$name/filter || echo "FILTER_FAIL $name :: $filter" >> /tmp/probe_status.txt
    fi
    if [ "$stack" = 1 ]; then echo stacktrace > $T/events/kprobes/$name/trigger; fi
  else
    echo "PROBE_FAIL $name :: $line :: $(tail -n 1 $T/error_log 2>/dev/null)" >> /tmp/probe_status.txt
  fi
done < /etc/probes.txt
echo 1 > $T/events/kprobes/enable
echo 1 > $T/events/module/module_load/enable
echo 1 > $T/events/module/module_free/enable
cp $T/kprobe_events /tmp/kprobe_events.txt

# pitfall 1: removing a dynamic event (and rmmod of a module with events) resets
# the ring buffer, so a reader drains trace_pipe into tmpfs all the time.
( while true; do cat $T/trace_pipe; done ) >> /tmp/trace.txt 2>/dev/null &
READER=$!
sed 's/^/start /' /proc/vmstat | grep ' direct_map' > /tmp/vmstat.txt
cat /proc/vmallocinfo > /tmp/vmallocinfo_start.txt
cat /proc/pagetypeinfo > /tmp/pagetypeinfo_start.txt 2>/dev/null
echo 1 > $T/tracing_on
log "tracing on"

# --- modules ---
mark "phase insmod"
n=0; fails=0
while read -r path; do
  [ -z "$path" ] && continue
  m=$(basename $path .ko)
  mark "insmod $m"
  if insmod $path 2>>/tmp/insmod_err.txt; then n=$((n+1)); else fails=$((fails+1)); log "INSMOD_FAIL $m"; fi
done < /etc/modules.order
log "insmod done ok=$n fail=$fails"
# every loaded module's section addresses (kernel/module/sysfs.c; real with kptr_restrict=1
# as root): the byte-level check of the recorder's layout, init sections included
cat /proc/modules > /tmp/modules_loaded.txt
for d in /sys/module/*/sections; do
  m=${d%/sections}; m=${m##*/}
  for f in $d/.[!.]* $d/*; do [ -f "$f" ] && echo "$m ${f##*/} $(cat $f)"; done
done > /tmp/sections.txt
sleep 1

# --- BPF (socket filters via bpf(), classic seccomp filters) ---
mark "phase bpf"
/bin/bpfload > /tmp/bpfinfo.txt 2>&1
log "bpfload rc=$?"
sleep 2

# --- ftrace: one instance per line, disjoint filters (pitfall 6) ---
mark "phase ftrace"
while IFS='|' read -r inst filt upd; do
  [ -z "$inst" ] && continue
  mkdir $T/instances/$inst
  # never enable the function tracer with an empty filter (it would trace everything)
  echo "$filt" > $T/instances/$inst/set_ftrace_filter 2>/tmp/ftrace_err.txt
  if ! grep -q . $T/instances/$inst/set_ftrace_filter; then
    log "FTRACE_SKIP $inst filter $filt matched nothing: $(cat /tmp/ftrace_err.txt)"; rmdir $T/instances/$inst; continue
  fi
  mark "ftrace $inst register"
  echo function > $T/instances/$inst/current_tracer
  sleep 1
  if [ -n "$upd" ]; then
    mark "ftrace $inst update"
    echo "$upd" >> $T/instances/$inst/set_ftrace_filter 2>/dev/null || log "FTRACE_UPDATE_FAIL $inst $upd"
    sleep 1
  fi
done < /etc/ftrace.txt
for i in $T/instances/*; do [ -d $i ] && echo "$(basename $i) $(wc -l < $i/set_ftrace_filter)" >> /tmp/ftrace_filters.txt; done
grep -c tramp $T/enabled_functions > /tmp/ftrace_tramp_count.txt
grep tramp $T/enabled_functions | head -n 50 > /tmp/enabled_functions.txt
while IFS='|' read -r inst filt upd; do
  [ -z "$inst" ] && continue
  [ -d $T/instances/$inst ] || continue
  mark "ftrace $inst unregister"
  echo nop > $T/instances/$inst/current_tracer
  sleep 1
  echo > $T/instances/$inst/set_ftrace_filter
  rmdir $T/instances/$inst
done < /etc/ftrace.txt
log "ftrace done"

# --- kprobes via kprobe_events (group wk) ---
mark "phase kprobe"
k=0
while read -r fn; do
  [ -z "$fn" ] && continue
  k=$((k+1))
  mark "kprobe add kp$k $fn"
  for off in @KPOFFS@; do
    if echo "p:wk/kp$k $fn$off" >> $T/kprobe_events 2>/dev/null; then
      echo "WK_OK kp$k $fn$off" >> /tmp/probe_status.txt; break
    fi
  done
done < /etc/wkprobes.txt
echo 1 > $T/events/wk/enable 2>/dev/null
sleep 2
cat /sys/kernel/debug/kprobes/list > /tmp/kprobes_list.txt 2>/dev/null || {
  mount -t debugfs none /sys/kernel/debug; cat /sys/kernel/debug/kprobes/list > /tmp/kprobes_list.txt; }
echo 0 > $T/events/wk/enable 2>/dev/null
for i in $(seq 1 $k); do
  sleep 1
  mark "kprobe del kp$i"
  echo "-:wk/kp$i" >> $T/kprobe_events 2>/dev/null
done
log "kprobes done"

# --- rmmod (leaves first) ---
mark "phase rmmod"
sleep 1
while read -r m; do
  [ -z "$m" ] && continue
  mark "rmmod $m"
  rmmod $m 2>>/tmp/insmod_err.txt || log "RMMOD_FAIL $m"
  sleep 1
done < /etc/rmmod.order
log "rmmod done"
sleep 3
mark "phase end"
sleep 1
echo 0 > $T/tracing_on
sleep 1
kill $READER; kill $(pidof cat) 2>/dev/null
sleep 1
log "trace bytes $(wc -c < /tmp/trace.txt)"
for c in $T/per_cpu/cpu*; do echo "== $c" >> /tmp/stats.txt; cat $c/stats >> /tmp/stats.txt; done
sed 's/^/end /' /proc/vmstat | grep ' direct_map' >> /tmp/vmstat.txt
echo "$(grep '^direct_map_level2_splits ' /proc/vmstat | cut -d' ' -f2) end" >> /tmp/vmstat_steps.txt
cat /proc/vmallocinfo > /tmp/vmallocinfo.txt
cat /proc/modules > /tmp/modules.txt
dmesg | grep -iE 'modules|kaslr|CPU features|Memory:|Machine model|rodata' > /tmp/dmesg_arch.txt
grep -E ' (module_alloc|execmem_alloc|execmem_alloc_rw|execmem_cache_populate_alloc|__vmalloc_node_range|__vmalloc_node_range_noprof|__text_poke|text_poke_queue|smp_text_poke_batch_add|smp_text_poke_single|alloc_insn_page|__get_insn_slot|_stext|_etext|_end|_text|aarch64_insn_patch_text_nosync|__change_memory_common|module_alloc_base|module_direct_base|module_plt_base)$' /proc/kallsyms > /tmp/kallsyms_probed.txt
grep -E ' (__)?(split_large_page|change_page_attr_set_clr|change_page_attr|cpa_process_alias|set_pages_np|cpa_flush)([.][a-z]+[.][0-9]+)*$' /proc/kallsyms >> /tmp/kallsyms_probed.txt
cp /sys/kernel/debug/kprobes/blacklist /tmp/kprobes_blacklist.txt 2>/dev/null
log "dump"
dump() { echo "@@BEGIN $1@@"; gzip -c "$2" | base64; echo "@@END $1@@"; }
for f in log probe_status kprobe_events bpfinfo ftrace_filters ftrace_tramp_count enabled_functions kprobes_list \
         stats vmstat vmstat_steps pagetypeinfo_start vmallocinfo vmallocinfo_start modules modules_loaded sections dmesg_arch kallsyms_probed insmod_err trace; do
  [ -f /tmp/$f.txt ] && dump $f /tmp/$f.txt
done
echo "@@DONE@@"
sync
poweroff -f
