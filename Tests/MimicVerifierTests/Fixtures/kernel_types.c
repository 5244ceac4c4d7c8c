/* A stand-in for a kernel's BTF, for tests of BTF-typed contexts and kernel pointers that run
 * without /sys/kernel/btf/vmlinux (KernelTypesTests): the types, functions and tracepoint
 * typedefs the tracing fixtures attach to, with the kernel's names and a layout of their own.
 * No programs: only its .BTF is used. Rebuild with ./build.sh. */
typedef int pid_t;
typedef unsigned int uid_t;
typedef unsigned long long u64;

typedef struct { uid_t val; } kuid_t;

struct cred {
    long usage;
    kuid_t uid;
};

struct task_struct {
    unsigned int __state;
    unsigned int flags;
    int exit_code;
    pid_t pid;
    pid_t tgid;
    struct task_struct *real_parent;
    struct task_struct *parent;
    u64 start_time;
    const struct cred *cred;
    char comm[16];
    unsigned int bits : 3;
    union {
        struct task_struct *leader;
        unsigned long leader_value;
    } either;
    struct { int depth; struct cred *saved; } nested;
};

struct filename {
    const char *name;
    int refcnt;
    const char iname[];
};

struct linux_binprm { struct file *file; };
struct file { void *f_inode; };
struct seq_file { int count; };

struct bpf_iter_meta {
    struct seq_file *seq;
    u64 session_id;
    u64 seq_num;
};

struct bpf_map { int id; };

/* The context structs iterator programs declare (their layout is the iterator's arguments). */
struct bpf_iter__task {
    struct bpf_iter_meta *meta;
    struct task_struct *task;
};
struct bpf_iter__bpf_map_elem {
    struct bpf_iter_meta *meta;
    struct bpf_map *map;
    void *key;
    void *value;
};
/* clang describes a struct only reached through pointers as a declaration: variables of each
 * make the BTF hold their definitions, as a kernel's does. */
struct bpf_iter__task iter_task_context;
struct bpf_iter__bpf_map_elem iter_map_elem_context;
struct cred cred_type;
struct filename filename_type;
struct linux_binprm linux_binprm_type;
struct file file_type;
struct seq_file seq_file_type;
struct bpf_map bpf_map_type;
struct sock sock_type;
struct sk_buff sk_buff_type;
struct tcp_sock tcp_sock_type;

/* fentry/fexit targets: a function's prototype types its context. */
__attribute__((noinline)) int do_unlinkat(int dfd, struct filename *name) { return dfd + (name != 0); }
__attribute__((noinline)) void *returns_pointer(struct task_struct *task) { return task; }
__attribute__((noinline)) long takes_enum_pointer(int **pointers) { return pointers != 0; }

/* Iterators: bpf_iter_NAME, the meta first. */
__attribute__((noinline)) int bpf_iter_task(struct bpf_iter_meta *meta, struct task_struct *task)
{
    return meta != 0 && task != 0;
}
__attribute__((noinline)) int bpf_iter_bpf_map_elem(struct bpf_iter_meta *meta, struct bpf_map *map, void *key, void *value)
{
    return meta != 0 && map != 0 && key != 0 && value != 0;
}

struct sock_common { unsigned short skc_family; };
struct sock {
    struct sock_common __sk_common;
    int sk_rcvbuf;
};
struct sk_buff { unsigned int len; };
struct tcp_sock {
    struct sock sk;
    unsigned int srtt_us;
};

/* BTF-enabled tracepoints: btf_trace_NAME, `void *__data` first. kfree_skb's fourth argument
 * may be NULL in the kernel's raw_tp_null_args table. */
typedef void (*btf_trace_sched_process_exec)(void *__data, struct task_struct *p, pid_t old_pid,
                                             struct linux_binprm *bprm);
typedef void (*btf_trace_kfree_skb)(void *__data, void *skb, void *location, int reason, struct task_struct *rx);

typedef void (*btf_trace_tcp_probe)(void *__data, struct sock *sk, const struct sk_buff *skb);

btf_trace_sched_process_exec sched_process_exec_type;
btf_trace_tcp_probe tcp_probe_type;
btf_trace_kfree_skb kfree_skb_type;
