/* Object kfuncs the way the kernel's selftests use them: objects from bpf_obj_new in a list and
 * a red-black tree, reference counting, and CPU masks; plus the open-coded numeric iterator.
 * The list and tree roots sit beside their bpf_spin_lock in a private data section and every
 * list and tree operation runs with the lock held (objects are dropped after it is released),
 * as the kernel's verifier requires: TimerDynptrKernelTests runs the programs in the kernel too.
 * Results go to .bss for the tests to read. */
#include "../../../Examples/mimic_bpf.h"

#define __ksym __attribute__((section(".ksyms")))
#define __contains(name, node) __attribute__((btf_decl_tag("contains:" #name ":" #node)))
#define private(name) __attribute__((section(".data." #name), aligned(8)))
#define bpf_core_type_id_local(type) __builtin_btf_type_id(*(typeof(type) *)0, 0)
#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
#define bpf_obj_drop(kptr) bpf_obj_drop_impl(kptr, NULL)
#define bpf_refcount_acquire(kptr) bpf_refcount_acquire_impl(kptr, NULL)
#define bpf_list_push_back(head, node) bpf_list_push_back_impl(head, node, NULL, 0)
#define bpf_list_push_front(head, node) bpf_list_push_front_impl(head, node, NULL, 0)
#define bpf_rbtree_add(head, node, less) bpf_rbtree_add_impl(head, node, less, NULL, 0)
#define container_of(ptr, type, member) ((type *)((void *)(ptr) - offsetof(type, member)))

struct bpf_list_head { __u64 __opaque[2]; } __attribute__((aligned(8)));
struct bpf_list_node { __u64 __opaque[3]; } __attribute__((aligned(8)));
struct bpf_rb_root { __u64 __opaque[2]; } __attribute__((aligned(8)));
struct bpf_rb_node { __u64 __opaque[4]; } __attribute__((aligned(8)));
struct bpf_refcount { __u32 __opaque[1]; } __attribute__((aligned(4)));
struct bpf_cpumask;
struct cpumask;

extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;
extern void *bpf_refcount_acquire_impl(void *kptr, void *meta) __ksym;
extern int bpf_list_push_front_impl(struct bpf_list_head *head, struct bpf_list_node *node, void *meta, __u64 off) __ksym;
extern int bpf_list_push_back_impl(struct bpf_list_head *head, struct bpf_list_node *node, void *meta, __u64 off) __ksym;
extern struct bpf_list_node *bpf_list_pop_front(struct bpf_list_head *head) __ksym;
extern struct bpf_list_node *bpf_list_pop_back(struct bpf_list_head *head) __ksym;
extern int bpf_rbtree_add_impl(struct bpf_rb_root *root, struct bpf_rb_node *node,
                               _Bool (*less)(struct bpf_rb_node *, const struct bpf_rb_node *), void *meta, __u64 off) __ksym;
extern struct bpf_rb_node *bpf_rbtree_first(struct bpf_rb_root *root) __ksym;
extern struct bpf_rb_node *bpf_rbtree_remove(struct bpf_rb_root *root, struct bpf_rb_node *node) __ksym;
extern struct bpf_cpumask *bpf_cpumask_create(void) __ksym;
extern void bpf_cpumask_release(struct bpf_cpumask *cpumask) __ksym;
extern void bpf_cpumask_set_cpu(__u32 cpu, struct bpf_cpumask *cpumask) __ksym;
extern _Bool bpf_cpumask_test_cpu(__u32 cpu, const struct cpumask *cpumask) __ksym;
extern __u32 bpf_cpumask_first(const struct cpumask *cpumask) __ksym;
extern __u32 bpf_cpumask_weight(const struct cpumask *cpumask) __ksym;
extern _Bool bpf_cpumask_full(const struct cpumask *cpumask) __ksym;
extern void bpf_cpumask_setall(struct bpf_cpumask *cpumask) __ksym;

struct item {
    long key;
    struct bpf_list_node link;
    struct bpf_rb_node node;
    struct bpf_refcount ref;
};

private(A) struct bpf_spin_lock glock;
private(A) struct bpf_list_head items __contains(item, link);
private(A) struct bpf_rb_root tree __contains(item, node);

long list_order[4];
long tree_order[4];
long results[8];
long mask_results[6];

static _Bool less(struct bpf_rb_node *a, const struct bpf_rb_node *b)
{
    return container_of(a, struct item, node)->key < container_of(b, struct item, node)->key;
}

SEC("syscall")
int lists_and_trees(void *ctx)
{
    long keys[3] = { 20, 5, 12 };
    for (int i = 0; i < 3; i++) {
        struct item *it = bpf_obj_new(struct item);
        if (!it)
            return 1;
        it->key = keys[i];
        /* One reference for the list, one for the tree. */
        struct item *second = bpf_refcount_acquire(it);
        bpf_spin_lock(&glock);
        bpf_list_push_back(&items, &it->link);
        if (second)
            bpf_rbtree_add(&tree, &second->node, less);
        bpf_spin_unlock(&glock);
    }
    /* A node already in the list cannot be pushed again. */
    struct item *extra = bpf_obj_new(struct item);
    if (!extra)
        return 1;
    struct item *alias = bpf_refcount_acquire(extra);
    bpf_spin_lock(&glock);
    results[0] = bpf_list_push_front(&items, &extra->link);
    if (alias)
        results[1] = bpf_list_push_front(&items, &alias->link); /* -EINVAL */
    bpf_spin_unlock(&glock);

    for (int i = 0; i < 4; i++) {
        bpf_spin_lock(&glock);
        struct bpf_list_node *link = bpf_list_pop_back(&items);
        bpf_spin_unlock(&glock);
        if (!link)
            break;
        struct item *it = container_of(link, struct item, link);
        list_order[i] = it->key;
        bpf_obj_drop(it);
    }
    bpf_spin_lock(&glock);
    struct bpf_list_node *left = bpf_list_pop_front(&items);
    bpf_spin_unlock(&glock);
    results[2] = left == 0;
    if (left)
        bpf_obj_drop(container_of(left, struct item, link));
    for (int i = 0; i < 4; i++) {
        bpf_spin_lock(&glock);
        struct bpf_rb_node *first = bpf_rbtree_first(&tree);
        if (!first) {
            bpf_spin_unlock(&glock);
            break;
        }
        struct bpf_rb_node *removed = bpf_rbtree_remove(&tree, first);
        bpf_spin_unlock(&glock);
        if (!removed)
            break;
        struct item *it = container_of(removed, struct item, node);
        tree_order[i] = it->key;
        bpf_obj_drop(it);
    }
    bpf_spin_lock(&glock);
    results[3] = bpf_rbtree_first(&tree) == 0;
    bpf_spin_unlock(&glock);
    return 0;
}

SEC("syscall")
int cpumasks(void *ctx)
{
    struct bpf_cpumask *mask = bpf_cpumask_create();
    if (!mask)
        return 1;
    mask_results[0] = bpf_cpumask_first((const struct cpumask *)mask); /* empty: nr_cpu_ids */
    bpf_cpumask_set_cpu(1, mask);
    bpf_cpumask_set_cpu(4096, mask);                                    /* not a CPU: ignored */
    mask_results[1] = bpf_cpumask_test_cpu(1, (const struct cpumask *)mask);
    mask_results[2] = bpf_cpumask_first((const struct cpumask *)mask);
    mask_results[3] = bpf_cpumask_weight((const struct cpumask *)mask);
    mask_results[4] = bpf_cpumask_full((const struct cpumask *)mask);
    bpf_cpumask_setall(mask);
    mask_results[5] = bpf_cpumask_weight((const struct cpumask *)mask);
    bpf_cpumask_release(mask);
    return 0;
}

char _license[] SEC("license") = "GPL";
