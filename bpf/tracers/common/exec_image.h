// exec_image.h: what an exec tracer reads of the new image at
// sched_process_exec: the file given to exec and the start of argv. The
// exec and proc tracers both report execs; this is the one place that
// reads them.
#ifndef EBPFREC_EXEC_IMAGE_H
#define EBPFREC_EXEC_IMAGE_H

#define EXEC_FILENAME_LEN 256
#define EXEC_ARGS_LEN 256

// read_exec_image fills filename (NUL-terminated; *filename_trunc set if
// it filled the buffer) from bprm, and args with the first EXEC_ARGS_LEN
// bytes of the new image's argv strings (NUL-separated, from its stack);
// *args_len is their whole length, 0 if unreadable.
static __always_inline void read_exec_image(struct task_struct *p, struct linux_binprm *bprm,
					    char filename[EXEC_FILENAME_LEN], __u32 *filename_trunc,
					    char args[EXEC_ARGS_LEN], __u32 *args_len)
{
	long len = bpf_probe_read_kernel_str(filename, EXEC_FILENAME_LEN, bprm->filename);
	if (len < 0) {
		filename[0] = 0;
		len = 0;
	}
	*filename_trunc = len == EXEC_FILENAME_LEN;

	struct mm_struct *mm = p->mm;
	__u64 start = mm->arg_start, end = mm->arg_end;
	__u32 alen = end > start && end - start < EXEC_ARGS_LEN ? end - start : EXEC_ARGS_LEN;
	if (end <= start)
		alen = 0;
	barrier_var(alen);
	*args_len = 0;
	if (alen > 0 && alen <= EXEC_ARGS_LEN && bpf_probe_read_user(args, alen, (void *)start) == 0)
		*args_len = end - start;
}

#endif
