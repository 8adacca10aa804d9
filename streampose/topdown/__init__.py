"""Top-down pose estimation: person crops → network → decoders → keypoints in frame pixels."""
