"""One torch thread per test process: on the 2-core CI machine, Ray's trial workers run
beside the test process, and oversubscribed OpenMP threads made a training step 25x slower
(measured: 7.5 s against 0.28 s)."""
import torch

torch.set_num_threads(1)
