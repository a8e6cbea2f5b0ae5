"""u07's tests catch the bugs students really make when they write a training loop.

Each mutant is the reference with one realistic bug planted by a text
substitution (see tests/test_mutants.py for the idea). A substitution
replaces every occurrence of its text in solutions/scratchllm/training.py.
"""

import pytest

from kit import assert_mutant_caught

ADAM_UPDATE = """\
                p.mul_(1 - lr * wd)
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                m_hat = m / (1 - beta1 ** t)
                v_hat = v / (1 - beta2 ** t)
                p.sub_(lr * m_hat / (v_hat.sqrt() + eps))
"""
ADAM_STATE = """\
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
"""
CLIP = """\
    scale = min(1.0, max_norm / (norm + eps))
    if scale < 1.0:
        for g in grads:
            g.mul_(scale)
    return norm
"""
BACKWARD_THEN_CLIP = """\
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if max_norm is not None:
        clip_grad_norm(model.parameters(), max_norm)
"""
LSE = "    lse = m.squeeze(-1) + torch.log(torch.exp(logits - m).sum(dim=-1))\n"
WARMUP = "        return it / warmup_iters * max_lr\n"
PROGRESS = "    progress = (it - warmup_iters) / (cosine_iters - warmup_iters)\n"

PUBLIC = "exercises/tests/test_u07_training.py"
HIDDEN = "grader/hidden/test_u07_training_hidden.py"

# (description, the test that catches it, old text, new text). Each mutant runs
# only the test named (all its parameters), which keeps this file fast.
MUTANTS = [
    # cross-entropy
    ("cross-entropy averaged over ignored targets too",
     "test_cross_entropy_skips_ignored_targets",
     "return losses.sum() / keep.sum()", "return losses.sum() / targets.numel()"),
    ("cross-entropy without the max subtraction (overflows)",
     "test_cross_entropy_does_not_overflow",
     "    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))\n", "    m = torch.zeros_like(m)\n"),
    ("cross-entropy on (B, T, V) not flattened: the target logit gathered along axis 1",
     "test_cross_entropy_matches_torch_on_batched_sequences",
     "    logits = logits.reshape(-1, logits.size(-1))\n    targets = targets.reshape(-1)\n", ""),
    ("cross-entropy's logsumexp over the positions instead of the classes",
     "test_cross_entropy_matches_torch_on_batched_sequences",
     LSE, "    lse = (m + torch.log(torch.exp(logits - m).sum(dim=0, keepdim=True))).sum(-1)\n"),
    ("cross-entropy ignores ignore_index and skips -100 only",
     "test_cross_entropy_uses_the_given_ignore_index",
     "keep = targets != ignore_index", "keep = targets != -100"),
    # AdamW
    ("AdamW decays after the update",
     "test_adamw_decays_before_the_update_and_times_lr",
     ADAM_UPDATE,
     ADAM_UPDATE.replace("                p.mul_(1 - lr * wd)\n", "") + "                p.mul_(1 - lr * wd)\n"),
    ("AdamW adds eps inside the square root",
     "test_adamw_adds_eps_outside_the_square_root",
     "(v_hat.sqrt() + eps)", "(v_hat + eps).sqrt()"),
    ("AdamW without bias correction",
     "test_adamw_with_defaults_matches_torch",
     "                m_hat = m / (1 - beta1 ** t)\n                v_hat = v / (1 - beta2 ** t)\n",
     "                m_hat = m\n                v_hat = v\n"),
    ("AdamW bias-corrects m only",
     "test_adamw_with_defaults_matches_torch",
     "                v_hat = v / (1 - beta2 ** t)\n", "                v_hat = v\n"),
    ("Adam + L2: decay added to the gradient",
     "test_adamw_decays_before_the_update_and_times_lr",
     "                p.mul_(1 - lr * wd)\n                m.mul_(beta1)",
     "                g = g + wd * p\n                m.mul_(beta1)"),
    ("AdamW decay not multiplied by lr",
     "test_adamw_decays_before_the_update_and_times_lr",
     "p.mul_(1 - lr * wd)", "p.mul_(1 - wd)"),
    ("AdamW step count off by one",
     "test_adamw_with_defaults_matches_torch",
     'state["step"] = 0', 'state["step"] = 1'),
    ("AdamW decays parameters that have no gradient",
     "test_adamw_leaves_parameters_without_gradient_alone",
     "                if p.grad is None:\n                    continue\n",
     "                if p.grad is None:\n                    p.mul_(1 - lr * wd)\n                    continue\n"),
    ("AdamW state kept per position in a group: two groups share it",
     "test_adamw_param_groups_have_their_own_settings_and_state",
     ADAM_STATE,
     ADAM_STATE.replace('for p in group["params"]', 'for i, p in enumerate(group["params"])')
                                .replace("self.state[p]", "self.state[i]")),
    ("AdamW uses the first group's lr for every group",
     "test_adamw_param_groups_have_their_own_settings_and_state",
     'lr, (beta1, beta2) = group["lr"], group["betas"]',
     'lr, (beta1, beta2) = self.param_groups[0]["lr"], group["betas"]'),
    # clipping
    ("clipping always rescales to max_norm",
     "test_clip_leaves_small_gradients_alone",
     CLIP,
     CLIP.replace("min(1.0, max_norm / (norm + eps))", "max_norm / (norm + eps)").replace("scale < 1.0", "True")),
    ("clipping each parameter by its own norm",
     "test_clip_uses_one_global_norm",
     CLIP, "    for g in grads:\n        g.mul_(min(1.0, max_norm / (float(g.norm()) + eps)))\n    return norm\n"),
    ("clipping returns the norm after clipping",
     "test_clip_uses_one_global_norm",
     "            g.mul_(scale)\n    return norm\n",
     "            g.mul_(scale)\n    return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))\n"),
    # batches
    ("get_batch with y = x + 1",
     "test_get_batch_gives_windows_and_their_next_tokens",
     "    y = torch.stack([tokens[s + 1:s + block_size + 1] for s in starts.tolist()])\n", "    y = x + 1\n"),
    ("get_batch never reaches the last window",
     "test_get_batch_reaches_the_last_window",
     "torch.randint(0, n_starts,", "torch.randint(0, n_starts - 1,"),
    ("get_batch ignores the generator",
     "test_get_batch_draws_with_the_given_generator_only",
     "generator=generator, device=generator.device)", "device=generator.device)"),
    # schedule
    ("warmup from it + 1",
     "test_lr_warmup_starts_at_zero_and_rises_linearly",
     WARMUP, "        return (it + 1) / warmup_iters * max_lr\n"),
    ("warmup reaches max_lr one step early",
     "test_lr_warmup_starts_at_zero_and_rises_linearly",
     WARMUP, "        return it / (warmup_iters - 1) * max_lr\n"),
    ("cosine reaches min_lr one step late",
     "test_lr_follows_torch_cosine_then_stays_at_min",
     PROGRESS, "    progress = (it - warmup_iters) / (cosine_iters - warmup_iters + 1)\n"),
    ("cosine_iters read as a length after the warmup",
     "test_lr_follows_torch_cosine_then_stays_at_min",
     PROGRESS, "    progress = (it - warmup_iters) / cosine_iters\n"),
    # loss scaling
    ("loss scaler steps on inf/NaN gradients",
     "test_loss_scaler_behaves_like_torch_grad_scaler",
     "        if self.found_inf:\n            return False\n", ""),
    ("loss scaler never backs off",
     "test_loss_scaler_behaves_like_torch_grad_scaler",
     "            self.scale_value *= self.backoff_factor\n", "            pass\n"),
    ("loss scaler never grows",
     "test_loss_scaler_behaves_like_torch_grad_scaler",
     "                self.scale_value *= self.growth_factor\n", "                pass\n"),
    ("loss scaler keeps counting good steps across a bad one",
     "test_loss_scaler_behaves_like_torch_grad_scaler",
     "            self.scale_value *= self.backoff_factor\n            self.growth_tracker = 0\n",
     "            self.scale_value *= self.backoff_factor\n"),
    ("loss scaler never forgets an inf",
     "test_loss_scaler_behaves_like_torch_grad_scaler",
     "        self.found_inf = False\n        self.unscaled = False\n", "        self.unscaled = False\n"),
    # train_step
    ("clipping before unscaling",
     "test_train_step_matches_a_torch_step",
     BACKWARD_THEN_CLIP, BACKWARD_THEN_CLIP.replace("        scaler.unscale_(optimizer)\n", "")),
    ("train_step never zeroes the gradients",
     "test_train_step_matches_a_torch_step",
     "    optimizer.zero_grad(set_to_none=True)\n", ""),
    ("train_step ignores max_norm",
     "test_train_step_matches_a_torch_step",
     "        clip_grad_norm(model.parameters(), max_norm)\n", "        pass\n"),
    ("train_step never uses autocast",
     "test_train_step_matches_a_torch_step",
     "enabled=dtype is not None", "enabled=False"),
    # checkpoints
    ("torch's RNG state not restored",
     "test_checkpoint_resume_is_exact",
     '        torch.set_rng_state(state["torch"])\n', ""),
    ("no RNG states saved", "test_checkpoint_resume_is_exact", "    if rng:\n", "    if False:\n"),
    ("Python's RNG state not restored",
     "test_checkpoint_resume_is_exact",
     "        random.setstate((version, tuple(internal), gauss))\n", ""),
    ("optimizer state not restored",
     "test_checkpoint_resume_is_exact",
     '    optimizer.load_state_dict(ckpt["optimizer"])\n', ""),
    # estimate_loss and train
    ("estimate_loss in training mode (dropout on)",
     "test_estimate_loss_is_the_loss_over_fixed_windows_in_eval_mode",
     "    model.eval()\n", ""),
    ("estimate_loss leaves the model in eval mode",
     "test_estimate_loss_is_the_loss_over_fixed_windows_in_eval_mode",
     "    model.train(was_training)\n", ""),
    ("estimate_loss on random windows",
     "test_estimate_loss_with_two_windows_takes_the_first_and_the_last",
     "    starts = [0] if n == 1 else [i * (n_starts - 1) // (n - 1) for i in range(n)]\n",
     "    starts = torch.randint(0, n_starts, (n,)).tolist()\n"),
    ("train never sets the scheduled lr",
     "test_train_first_warmup_step_changes_nothing",
     '                group["lr"] = lr\n', "                pass\n"),
    ("train evaluates every step",
     "test_train_resumes_exactly_from_its_checkpoint",
     "            if done % c.eval_interval == 0:\n", "            if True:\n"),
    ("train does not restore the batch generator on resume",
     "test_train_resumes_exactly_from_its_checkpoint",
     '            generator.set_state(ckpt["generator"])\n', "            pass\n"),
    ("train forgets the history before the checkpoint",
     "test_train_resumes_exactly_from_its_checkpoint",
     '        start, history = ckpt["iteration"], ckpt["history"]\n', '        start = ckpt["iteration"]\n'),
    ("train saves nothing on Ctrl-C",
     "test_train_saves_a_checkpoint_on_ctrl_c",
     "        checkpoint(done)\n        raise\n", "        raise\n"),
]


@pytest.mark.parametrize("description, test, old, new", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_public_tests_catch_the_mutant(tmp_path, description, test, old, new):
    assert_mutant_caught(tmp_path, "u07", "training", description, old, new, tests=f"{PUBLIC}::{test}")


# Bugs only the hidden tests are there to catch.
HIDDEN_MUTANTS = [
    ("loss scaler's step() does not unscale by itself",
     "test_loss_scaler_other_factors",
     "        self.unscale_(optimizer)\n        if self.found_inf:", "        if self.found_inf:"),
    ("loss scaler unscales twice when unscale_ is called twice",
     "test_loss_scaler_other_factors",
     "        if self.unscaled:\n            return\n", ""),
    ("AdamW ignores the closure",
     "test_adamw_float32_and_closure",
     "                loss = closure()\n", "                pass\n"),
    ("save_checkpoint drops the extra entries",
     "test_checkpoint_keeps_extra_entries",
     '"iteration": int(iteration), **extra}', '"iteration": int(iteration)}'),
    ("save_checkpoint saves RNG states even with rng=False",
     "test_checkpoint_without_rng_leaves_the_generators_alone",
     "    if rng:\n", "    if True:\n"),
    ("train decays biases and gains too",
     "test_train_decays_matrices_only",
     '{"params": no_decay, "weight_decay": 0.0}', '{"params": no_decay, "weight_decay": c.weight_decay}'),
    ("train checkpoints only at the end",
     "test_train_checkpoints_every_interval",
     "            if done % c.checkpoint_interval == 0 or done == c.max_iters:\n",
     "            if done == c.max_iters:\n"),
    ("get_batch keeps the tokens' dtype",
     "test_get_batch_every_start_and_int32_tokens",
     "    tokens = tokens.to(torch.long)\n", ""),
]


@pytest.mark.parametrize("description, test, old, new", HIDDEN_MUTANTS, ids=[m[0] for m in HIDDEN_MUTANTS])
def test_hidden_tests_catch_the_mutant(tmp_path, description, test, old, new):
    assert_mutant_caught(tmp_path, "u07", "training", description, old, new, tests=f"{HIDDEN}::{test}")
