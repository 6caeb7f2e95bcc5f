"""recommenders/serving"""
