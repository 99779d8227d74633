"""Training machinery: batches from Clips, the teacher-forcing schedule, configs and the loop."""
