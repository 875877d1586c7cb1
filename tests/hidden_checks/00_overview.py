# Hidden checks for exercises/00_overview.ipynb: an example of the format that
# `python -m minipixtral.grade --hidden tests/hidden_checks` reads. The students never see
# this file. Each section runs right after the visible checks of its exercise, in the same
# kernel, so it can call the student's functions; a failing assert fails the exercise.

# %% Exercise 0.1
assert image_token_ids(tekken) == tuple(tekken.get_special_token(n)
                                        for n in ("[IMG]", "[IMG_BREAK]", "[IMG_END]"))

# %% Exercise 0.3
got = weights_gigabytes(10**9, torch.float64)
assert abs(got - 8.0) < 1e-9, f"a billion float64 values are 8 GB, got {got}: is it hard-coded?"
