/* The shape of a bpf_rb_root, read with bpf_rbtree_root / _left / _right (Linux 6.16+) the way the
 * kernel's selftests (rbtree_search.c) walk it: eight nodes added in ascending order, then the
 * root removed. The kernel's lib/rbtree.c rebalances into the shapes the tests expect; the tree
 * sits beside its bpf_spin_lock in a private data section, as the verifier requires. Results go
 * to .bss for the tests to read. */
#include "../../../Examples/mimic_bpf.h"

#define __ksym __attribute__((section(".ksyms")))
#define __contains(name, node) __attribute__((btf_decl_tag("contains:" #name ":" #node)))
#define private(name) __attribute__((section(".data." #name), aligned(8)))
#define bpf_core_type_id_local(type) __builtin_btf_type_id(*(typeof(type) *)0, 0)
#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
#define bpf_obj_drop(kptr) bpf_obj_drop_impl(kptr, NULL)
#define bpf_rbtree_add(head, node, less) bpf_rbtree_add_impl(head, node, less, NULL, 0)
#define container_of(ptr, type, member) ((type *)((void *)(ptr) - offsetof(type, member)))

struct bpf_rb_root { __u64 __opaque[2]; } __attribute__((aligned(8)));
struct bpf_rb_node { __u64 __opaque[4]; } __attribute__((aligned(8)));

extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;
extern int bpf_rbtree_add_impl(struct bpf_rb_root *root, struct bpf_rb_node *node,
                               _Bool (*less)(struct bpf_rb_node *, const struct bpf_rb_node *), void *meta, __u64 off) __ksym;
extern struct bpf_rb_node *bpf_rbtree_first(struct bpf_rb_root *root) __ksym;
extern struct bpf_rb_node *bpf_rbtree_remove(struct bpf_rb_root *root, struct bpf_rb_node *node) __ksym;
extern struct bpf_rb_node *bpf_rbtree_root(struct bpf_rb_root *root) __ksym;
extern struct bpf_rb_node *bpf_rbtree_left(struct bpf_rb_root *root, struct bpf_rb_node *node) __ksym;
extern struct bpf_rb_node *bpf_rbtree_right(struct bpf_rb_root *root, struct bpf_rb_node *node) __ksym;

struct item {
    long key;
    struct bpf_rb_node node;
};

private(A) struct bpf_spin_lock glock;
private(A) struct bpf_rb_root groot __contains(item, node);

/* The keys at root, L, R, LL, LR, RL, RR, RRR (0 for no node). */
long after_adds[8];
long after_remove[8];
/* [0] the key removed, [1] left of the removed node is NULL, [2] right of it is NULL,
 * [3] keys drained in order (as a number: 1235678), [4] the tree is empty at the end. */
long results[5];

static _Bool less(struct bpf_rb_node *a, const struct bpf_rb_node *b)
{
    return container_of(a, struct item, node)->key < container_of(b, struct item, node)->key;
}

static __always_inline long key_of(struct bpf_rb_node *n)
{
    return n ? container_of(n, struct item, node)->key : 0;
}

/* Records the shape down to depth 3 on the right; called with glock held. */
static __always_inline void record(long *out)
{
    struct bpf_rb_node *root = bpf_rbtree_root(&groot);
    if (!root)
        return;
    out[0] = key_of(root);
    struct bpf_rb_node *l = bpf_rbtree_left(&groot, root);
    struct bpf_rb_node *r = bpf_rbtree_right(&groot, root);
    out[1] = key_of(l);
    out[2] = key_of(r);
    if (l) {
        out[3] = key_of(bpf_rbtree_left(&groot, l));
        out[4] = key_of(bpf_rbtree_right(&groot, l));
    }
    if (r) {
        out[5] = key_of(bpf_rbtree_left(&groot, r));
        struct bpf_rb_node *rr = bpf_rbtree_right(&groot, r);
        out[6] = key_of(rr);
        if (rr)
            out[7] = key_of(bpf_rbtree_right(&groot, rr));
    }
}

SEC("syscall")
int shape(void *ctx)
{
    for (int i = 1; i <= 8; i++) {
        struct item *it = bpf_obj_new(struct item);
        if (!it)
            return 1;
        it->key = i;
        bpf_spin_lock(&glock);
        bpf_rbtree_add(&groot, &it->node, less);
        bpf_spin_unlock(&glock);
    }

    bpf_spin_lock(&glock);
    record(after_adds);
    struct bpf_rb_node *removed = 0;
    struct bpf_rb_node *root = bpf_rbtree_root(&groot);
    if (root)
        removed = bpf_rbtree_remove(&groot, root);
    record(after_remove);
    if (!removed) {
        bpf_spin_unlock(&glock);
        return 2;
    }
    /* A node in no tree has no children to give. */
    results[1] = bpf_rbtree_left(&groot, removed) == 0;
    results[2] = bpf_rbtree_right(&groot, removed) == 0;
    bpf_spin_unlock(&glock);
    results[0] = key_of(removed);
    bpf_obj_drop(container_of(removed, struct item, node));

    for (int i = 0; i < 8; i++) {
        bpf_spin_lock(&glock);
        struct bpf_rb_node *first = bpf_rbtree_first(&groot);
        if (!first) {
            bpf_spin_unlock(&glock);
            break;
        }
        struct bpf_rb_node *out = bpf_rbtree_remove(&groot, first);
        bpf_spin_unlock(&glock);
        if (!out)
            break;
        results[3] = results[3] * 10 + key_of(out);
        bpf_obj_drop(container_of(out, struct item, node));
    }
    bpf_spin_lock(&glock);
    results[4] = bpf_rbtree_root(&groot) == 0;
    bpf_spin_unlock(&glock);
    return 0;
}

char _license[] SEC("license") = "GPL";
