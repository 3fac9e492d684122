"""Pure models, no processes: device time per step (devices, device_times, profile), links and
collectives (links), DDP buckets (buckets), balanced batches (balance) and which runs use them
(split), the time dilation D (dilation); where ranks run and whether they are paced
(placement); the cluster as the config states it (cluster) and the Fleet built from it once
(fleet). The emulator, the predictor, the remedies and the collective benchmark import these;
each formula lives here once."""
