"""recommenders/tuning"""
